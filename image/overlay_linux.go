package image

// Overlay mounts.
//
//	func mountOverlay(lowers []string, upper, work, target string) error
//	func unmount(target string) error
//
// mountOverlay mounts at target an overlayfs of lowers (top-most first, as
// overlayfs orders them) with a writable upper and its work dir, or, when
// upper is "", a read-only union of the lowers alone. A single lower with no
// upper is a read-only bind mount, since overlayfs needs two layers to build
// a lower-only union.
//
// Images with many layers must mount. The classic mount(2) data string is
// limited to one page (4096 bytes), and 64 layers of
// /var/lib/berth/image/layers/<64 hex>/fs overflow it. So the mount is built
// with the new mount API: fsopen("overlay"), one FSCONFIG_SET_STRING
// "lowerdir+" per layer (Linux 6.8; each value is one path, so the total has
// no page limit and ':' or ',' in a path need no escaping), then upperdir,
// workdir, fsconfig(CREATE), fsmount and move_mount onto target. The kernel's
// own explanation of a refused configuration is read back from the fs
// context and put in the error.
//
// Whether the kernel takes "lowerdir+" is probed once per process
// (overlayLowerdirAdd). Without it the mount falls back to mount(2) with the
// data string. If the absolute paths do not fit in a page, each lower is
// opened O_PATH and named by its /proc/self/fd/N link (~18 bytes a layer,
// ~200 layers a page; overlayfs resolves the link to the directory when it
// parses the options). This serves the same purpose as containerd's
// fork-and-chdir relative paths, without a child process, and unlike relative
// paths its length does not depend on how the store names its layer dirs.
//
// Options, kept to what containerd's overlay snapshotter passes: index=off
// when the kernel knows the option: with the inode index on, a lower layer
// shared by many containers' overlays makes later mounts fail their origin
// checks. redirect_dir and metacopy keep the kernel's defaults:
// unpackLayer drops trusted.overlay.* xattrs from layer tars, so lowers never
// carry redirects or metacopy files of their own. userxattr is not needed:
// berthd mounts as real root.

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// overlayLowerdirAdd reports whether overlayfs takes "lowerdir+" through
// fsconfig(2), probed once. Overlayfs before 6.5 parses options the legacy
// way, where fsconfig accepts any key and only the final mount fails, so an
// unknown key being accepted means no "lowerdir+" either; 6.5 to 6.7 refuse
// "lowerdir+" as an unknown parameter.
var overlayLowerdirAdd = sync.OnceValue(func() bool {
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return false
	}
	defer unix.Close(fsfd)
	if unix.FsconfigSetString(fsfd, "berth-probe", "x") == nil {
		return false
	}
	return unix.FsconfigSetString(fsfd, "lowerdir+", "/") == nil
})

// overlayIndexOption reports whether the kernel's overlayfs has the index
// feature (and so the index=off option), as containerd checks it.
var overlayIndexOption = sync.OnceValue(func() bool {
	_, err := os.Stat("/sys/module/overlay/parameters/index")
	return err == nil
})

// mountOverlay mounts an overlay of lowers (top-most first) plus upper and
// work at target; with upper == "" the mount is read-only. See the file
// comment.
func mountOverlay(lowers []string, upper, work, target string) error {
	if len(lowers) == 0 {
		return fmt.Errorf("mount overlay at %s: no lower layers: %w", target, errdefs.ErrInvalidArgument)
	}
	if (upper == "") != (work == "") {
		return fmt.Errorf("mount overlay at %s: upperdir and workdir go together: %w", target, errdefs.ErrInvalidArgument)
	}
	if upper == "" && len(lowers) == 1 {
		if err := bindReadOnly(lowers[0], target); err != nil {
			return fmt.Errorf("mount layer %s read-only at %s: %w", lowers[0], target, err)
		}
		return nil
	}
	mount := mountOverlayClassic
	if overlayLowerdirAdd() {
		mount = mountOverlayFsopen
	}
	if err := mount(lowers, upper, work, target); err != nil {
		return fmt.Errorf("mount overlay of %d layers at %s: %w", len(lowers), target, err)
	}
	return nil
}

// mountOverlayFsopen builds the mount with the new mount API, one
// "lowerdir+" per layer.
func mountOverlayFsopen(lowers []string, upper, work, target string) error {
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("fsopen: %w", err)
	}
	defer unix.Close(fsfd)

	set := func(key, value string) error {
		if err := unix.FsconfigSetString(fsfd, key, value); err != nil {
			return fmt.Errorf("set %s=%s: %w%s", key, value, err, fsLog(fsfd))
		}
		return nil
	}
	if err := set("source", "overlay"); err != nil { // as mount(2) would name it
		return err
	}
	for _, l := range lowers {
		if err := set("lowerdir+", l); err != nil {
			return err
		}
	}
	if upper != "" {
		if err := set("upperdir", upper); err != nil {
			return err
		}
		if err := set("workdir", work); err != nil {
			return err
		}
	}
	if overlayIndexOption() {
		if err := set("index", "off"); err != nil {
			return err
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return fmt.Errorf("create overlay: %w%s", err, fsLog(fsfd))
	}
	var attrs int
	if upper == "" {
		attrs = unix.MOUNT_ATTR_RDONLY
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, attrs)
	if err != nil {
		return fmt.Errorf("fsmount: %w%s", err, fsLog(fsfd))
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move mount to %s: %w", target, err)
	}
	return nil
}

// fsLog drains the messages the kernel left in an fs context, formatted to
// follow an error.
func fsLog(fsfd int) string {
	var msgs []string
	buf := make([]byte, 1024)
	for {
		n, err := unix.Read(fsfd, buf)
		if err != nil || n <= 0 {
			break
		}
		msgs = append(msgs, strings.TrimSpace(string(buf[:n])))
	}
	if len(msgs) == 0 {
		return ""
	}
	return " (" + strings.Join(msgs, "; ") + ")"
}

// mountOverlayClassic mounts with mount(2) and a data string, for kernels
// without "lowerdir+". When absolute lower paths overflow the page the data
// string is limited to, the lowers are named by /proc/self/fd links.
func mountOverlayClassic(lowers []string, upper, work, target string) error {
	for _, p := range append([]string{upper, work}, lowers...) {
		if strings.ContainsAny(p, ",:") {
			return fmt.Errorf("layer path %q holds ',' or ':', which mount(2) options cannot carry: %w", p, errdefs.ErrInvalidArgument)
		}
	}
	data := overlayData(lowers, upper, work)
	if len(data) >= os.Getpagesize() {
		names := make([]string, len(lowers))
		for i, l := range lowers {
			fd, err := unix.Open(l, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("open lower %s: %w", l, err)
			}
			defer unix.Close(fd)
			names[i] = "/proc/self/fd/" + strconv.Itoa(fd)
		}
		data = overlayData(names, upper, work)
		if len(data) >= os.Getpagesize() {
			return fmt.Errorf("%d layers do not fit in mount options of one page on this kernel: %w", len(lowers), errdefs.ErrInvalidArgument)
		}
	}
	var flags uintptr
	if upper == "" {
		flags = unix.MS_RDONLY
	}
	if err := unix.Mount("overlay", target, "overlay", flags, data); err != nil {
		return fmt.Errorf("mount: %w", err)
	}
	return nil
}

func overlayData(lowers []string, upper, work string) string {
	var b strings.Builder
	if overlayIndexOption() {
		b.WriteString("index=off,")
	}
	b.WriteString("lowerdir=")
	b.WriteString(strings.Join(lowers, ":"))
	if upper != "" {
		b.WriteString(",upperdir=" + upper + ",workdir=" + work)
	}
	return b.String()
}

// bindReadOnly bind-mounts dir read-only at target.
func bindReadOnly(dir, target string) (retErr error) {
	if err := unix.Mount(dir, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	defer func() {
		if retErr != nil {
			unix.Unmount(target, unix.MNT_DETACH)
		}
	}()
	if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("remount read-only: %w", err)
	}
	return nil
}

// unmount unmounts everything mounted at target, detaching lazily what is
// busy. A target that is not mounted, or does not exist, is not an error.
// Like containerd's UnmountAll it repeats until target is no mount point,
// so target must be a directory used for nothing but this mount.
func unmount(target string) error {
	for range 64 {
		err := unix.Unmount(target, unix.UMOUNT_NOFOLLOW)
		switch err {
		case nil, unix.EINTR:
			continue
		case unix.EINVAL, unix.ENOENT:
			return nil // not (or no longer) a mount point
		case unix.EBUSY:
			if err := unix.Unmount(target, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil && err != unix.EINVAL {
				return fmt.Errorf("unmount %s: %w", target, err)
			}
		default:
			return fmt.Errorf("unmount %s: %w", target, err)
		}
	}
	return fmt.Errorf("unmount %s: still mounted after 64 unmounts", target)
}
