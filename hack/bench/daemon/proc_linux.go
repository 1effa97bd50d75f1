package daemon

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Proc is one process as /proc shows it.
type Proc struct {
	PID, PPID int
	Argv      []string
	Exe       string // the executable's path; empty when unreadable (kernel threads, gone)
	RSS       uint64 // VmRSS in bytes
	// RSSAnon and RSSFile split RSS into private memory (heap, stacks) and
	// file pages (mostly the executable's text, shared between processes
	// running the same binary).
	RSSAnon, RSSFile uint64
	CPU              time.Duration
	// ChildCPU is the CPU of children this process waited for: shims reap
	// runc, monitors reap their helpers.
	ChildCPU time.Duration
	exe      os.FileInfo
}

// Name is the base name of argv[0], which is how berthd names its roles.
func (p Proc) Name() string {
	if len(p.Argv) == 0 {
		return ""
	}
	return filepath.Base(p.Argv[0])
}

// PSS is the process's proportional set size in bytes: its resident pages
// with each shared page divided among the processes sharing it. It is read
// when asked for (smaps_rollup costs a page-table walk); 0 if gone.
func (p Proc) PSS() uint64 {
	f, err := os.Open("/proc/" + strconv.Itoa(p.PID) + "/smaps_rollup")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) >= 2 && fields[0] == "Pss:" {
			kb, _ := strconv.ParseUint(fields[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// clockTick is USER_HZ, the unit of /proc/<pid>/stat times; 100 on every
// Linux architecture Go supports.
const clockTick = 100

// Snapshot reads every process in /proc. Processes that exit while it reads
// are left out.
func Snapshot() (map[int]*Proc, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	procs := make(map[int]*Proc, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		p, err := readProc(pid)
		if err != nil {
			continue // exited, or a kernel thread we cannot read
		}
		procs[pid] = p
	}
	return procs, nil
}

func readProc(pid int) (*Proc, error) {
	dir := "/proc/" + strconv.Itoa(pid)
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return nil, err
	}
	// The command name is parenthesised and may hold spaces and parentheses:
	// the fields start after the last ')'.
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return nil, fmt.Errorf("malformed %s/stat", dir)
	}
	f := strings.Fields(string(stat[end+1:]))
	// f[0] is field 3 (state): ppid is field 4, utime..cstime are 14..17.
	if len(f) < 15 {
		return nil, fmt.Errorf("short %s/stat", dir)
	}
	num := func(i int) int64 { n, _ := strconv.ParseInt(f[i], 10, 64); return n }
	tick := func(n int64) time.Duration { return time.Duration(n) * time.Second / clockTick }
	p := &Proc{
		PID:      pid,
		PPID:     int(num(1)),
		CPU:      tick(num(11) + num(12)),
		ChildCPU: tick(num(13) + num(14)),
	}
	if cmd, err := os.ReadFile(dir + "/cmdline"); err == nil && len(cmd) > 0 {
		p.Argv = strings.Split(strings.TrimRight(string(cmd), "\x00"), "\x00")
	}
	p.Exe, _ = os.Readlink(dir + "/exe")
	p.exe, _ = os.Stat(dir + "/exe")
	p.readStatus(dir + "/status")
	return p, nil
}

// readStatus reads the RSS figures of /proc/<pid>/status; a zombie or a
// kernel thread has none.
func (p *Proc) readStatus(path string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text()) // VmRSS: 1234 kB
		if len(fields) < 2 {
			continue
		}
		kb, err := strconv.ParseUint(fields[1], 10, 64)
		if err != nil {
			continue
		}
		switch fields[0] {
		case "VmRSS:":
			p.RSS = kb * 1024
		case "RssAnon:":
			p.RSSAnon = kb * 1024
		case "RssFile:":
			p.RSSFile = kb * 1024
		}
	}
}

// SameExecutable reports whether p runs the file at path, comparing the
// files themselves (device and inode), not path strings.
func (p *Proc) SameExecutable(path os.FileInfo) bool {
	return p.exe != nil && path != nil && os.SameFile(p.exe, path)
}

// descendants are the processes below roots, roots included.
func descendants(procs map[int]*Proc, roots map[int]bool) map[int]bool {
	children := map[int][]int{}
	for pid, p := range procs {
		children[p.PPID] = append(children[p.PPID], pid)
	}
	out := map[int]bool{}
	var walk func(int)
	walk = func(pid int) {
		if out[pid] {
			return
		}
		out[pid] = true
		for _, c := range children[pid] {
			walk(c)
		}
	}
	for pid := range roots {
		walk(pid)
	}
	return out
}

// killAll sends SIGKILL to pids and waits up to timeout for them to go.
func killAll(pids []int, timeout time.Duration) {
	for _, pid := range pids {
		unix.Kill(pid, unix.SIGKILL)
	}
	deadline := time.Now().Add(timeout)
	for _, pid := range pids {
		for time.Now().Before(deadline) {
			if unix.Kill(pid, 0) != nil {
				break
			}
			// A zombie whose parent is gone is reaped by init; one whose
			// parent is us is reaped by exec.Cmd.Wait.
			if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && bytes.Contains(st, []byte(") Z ")) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
