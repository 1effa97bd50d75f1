package image

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap/zaptest"
)

func TestPullThroughAMirrorWhenTheUpstreamIsUnreachable(t *testing.T) {
	reg := newTestRegistry(t)
	img := imageOf(t, v1.Config{}, newLayer(t, gzipped, file{name: "pause", body: "p"}))
	reg.push(t, "pause:3.10", img)
	reg.push(t, "library/busybox:latest", img)
	dir := t.TempDir()
	// Neither upstream nor the first mirror answers (closed loopback
	// ports); the second mirror has the images.
	hosts := fmt.Sprintf(`server = "http://127.0.0.1:1"

[host."http://127.0.0.1:2"]
  capabilities = ["pull", "resolve"]

[host."%s"]
  capabilities = ["pull", "resolve"]
`, reg.URL)
	writeHosts(t, dir, "registry.k8s.io", hosts)
	writeHosts(t, dir, "docker.io", hosts)
	s := openTestStore(t, Config{ConfigPath: dir})

	for _, ref := range []string{"registry.k8s.io/pause:3.10", "busybox"} {
		id := mustPull(t, s, ref)
		if id != mustConfigDigest(t, img) {
			t.Fatalf("pull %s gave %s", ref, id)
		}
	}
	got, err := s.Get(context.Background(), "docker.io/library/busybox:latest")
	if err != nil || !slices.Contains(got.RepoTags, "registry.k8s.io/pause:3.10") {
		t.Fatalf("image %+v, %v: want both names on one image", got, err)
	}
}

func TestPullWithBasicAuthFromTheRequestOrTheCredentialsFile(t *testing.T) {
	reg := newTestRegistry(t)
	ref := reg.push(t, "private:1", imageOf(t, v1.Config{}, newLayer(t, gzipped, file{name: "secret", body: "s"})))
	reg.requireBasicAuth("alice", "s3cret")
	ctx := context.Background()

	t.Run("no credentials are refused", func(t *testing.T) {
		s := openTestStore(t, Config{})
		_, err := s.Pull(ctx, ref, nil)
		if !errdefs.IsUnauthorized(err) {
			t.Fatalf("error %v, want unauthenticated", err)
		}
	})
	t.Run("wrong credentials are refused and not echoed", func(t *testing.T) {
		s := openTestStore(t, Config{})
		_, err := s.Pull(ctx, ref, &Auth{Username: "alice", Password: "wrong-password"})
		if err == nil || strings.Contains(err.Error(), "wrong-password") {
			t.Fatalf("error %v: want a failure that does not quote the password", err)
		}
	})
	for _, tc := range []struct {
		name string
		auth *Auth
	}{
		{"username and password", &Auth{Username: "alice", Password: "s3cret"}},
		{"the base64 auth field", &Auth{Auth: base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))}},
		{"credentials for this server address", &Auth{Username: "alice", Password: "s3cret", ServerAddress: reg.host}},
	} {
		t.Run(tc.name+" are accepted", func(t *testing.T) {
			s := openTestStore(t, Config{})
			mustPullAuth(t, s, ref, tc.auth)
			assertNoSecretStored(t, s, "s3cret")
		})
	}
	t.Run("the credentials file is used when the request has none", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "config.json")
		cfg := map[string]any{"auths": map[string]any{"http://" + reg.host: map[string]string{
			"auth": base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))}}}
		data, _ := json.Marshal(cfg)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s := openTestStore(t, Config{CredentialsFile: path})
		mustPullAuth(t, s, ref, nil)
		assertNoSecretStored(t, s, "s3cret")
	})
}

func mustPullAuth(t *testing.T, s *Store, ref string, a *Auth) {
	t.Helper()
	if _, err := s.Pull(context.Background(), ref, a); err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
}

// assertNoSecretStored fails if secret appears in the store's database.
func assertNoSecretStored(t *testing.T, s *Store, secret string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(s.root, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), secret) || strings.Contains(string(data), base64.StdEncoding.EncodeToString([]byte("alice:"+secret))) {
		t.Fatal("the registry password is in meta.db")
	}
}

func TestReopenedStoreKeepsImagesAndCleansUpInterruptedWork(t *testing.T) {
	reg := newTestRegistry(t)
	img := imageOf(t, v1.Config{}, newLayer(t, gzipped, file{name: "kept", body: "k"}))
	ref := reg.push(t, "kept:1", img)
	root := t.TempDir()
	ctx := context.Background()
	s, err := Open(ctx, Options{Root: root, Log: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	id := mustPull(t, s, ref)
	s.Close()
	// What a berthd killed mid-pull leaves: a half-unpacked layer and a
	// partial download.
	half := filepath.Join(root, dirLayers, "zz", "fs", "usr")
	if err := os.MkdirAll(half, 0o755); err != nil {
		t.Fatal(err)
	}
	partial := filepath.Join(root, dirIngest, "abc-123")
	if err := os.WriteFile(partial, []byte("part"), 0o600); err != nil {
		t.Fatal(err)
	}

	s, err = Open(ctx, Options{Root: root, Log: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := os.Stat(filepath.Join(root, dirLayers, "zz")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("half-unpacked layer survived the restart: %v", err)
	}
	if _, err := os.Stat(partial); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("partial download survived the restart: %v", err)
	}
	imgs, err := s.List(ctx)
	if err != nil || len(imgs) != 1 || imgs[0].ID != id || !slices.Equal(imgs[0].RepoTags, []string{ref}) {
		t.Fatalf("after reopening List = %+v, %v", imgs, err)
	}
	target := mountTestSnapshot(t, s, "after-restart", id)
	if _, err := os.Stat(filepath.Join(target, "kept")); err != nil {
		t.Fatalf("image unusable after reopening: %v", err)
	}
}

func TestRemovingAnImageKeepsTheLayersOfItsContainersSnapshots(t *testing.T) {
	reg := newTestRegistry(t)
	img := imageOf(t, v1.Config{}, newLayer(t, gzipped, file{name: "a", body: "a"}), newLayer(t, zstded, file{name: "b", body: "b"}))
	s := openTestStore(t, Config{})
	ctx := context.Background()
	id := mustPull(t, s, reg.push(t, "used:1", img))
	if err := s.PrepareSnapshot(ctx, "c1", id); err != nil {
		t.Fatal(err)
	}
	if err := s.PrepareSnapshot(ctx, "c1", id); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("second snapshot with one key: %v, want already exists", err)
	}
	if err := s.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	if n := len(layerDirs(t, s)); n != 2 {
		t.Fatalf("%d layer dirs while a snapshot uses the removed image, want 2", n)
	}
	target := filepath.Join(t.TempDir(), "rootfs")
	os.Mkdir(target, 0o755)
	if err := s.MountSnapshot(ctx, "c1", target); err != nil {
		t.Fatalf("mount after image removal: %v", err)
	}
	if names := readdirNames(t, target); !slices.Equal(names, []string{"a", "b"}) {
		t.Fatalf("rootfs has %v", names)
	}
	if err := s.UnmountSnapshot(ctx, target); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveSnapshot(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if n := len(layerDirs(t, s)); n != 0 {
		t.Fatalf("%d layer dirs after the last snapshot went, want 0", n)
	}
	if names := readdirNames(t, filepath.Join(s.root, dirSnapshots)); len(names) != 0 {
		t.Fatalf("snapshot dirs left: %v", names)
	}
	if err := s.RemoveSnapshot(ctx, "c1"); err != nil {
		t.Fatalf("removing an unknown snapshot: %v", err)
	}
	if err := s.PrepareSnapshot(ctx, "c2", id); !errdefs.IsNotFound(err) {
		t.Fatalf("snapshot of a removed image: %v, want not found", err)
	}
}

func TestRemoveByTagUntagsWhileOtherTagsRemain(t *testing.T) {
	reg := newTestRegistry(t)
	img := imageOf(t, v1.Config{}, newLayer(t, gzipped, file{name: "x", body: "x"}))
	v1ref := reg.push(t, "tags:v1", img)
	v2ref := reg.push(t, "tags:v2", img)
	s := openTestStore(t, Config{})
	ctx := context.Background()
	id := mustPull(t, s, v1ref)
	mustPull(t, s, v2ref)

	if err := s.Remove(ctx, v1ref); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, id)
	if err != nil || !slices.Equal(got.RepoTags, []string{v2ref}) {
		t.Fatalf("after removing one tag: %+v, %v; want the image with tag %s", got, err, v2ref)
	}
	if _, err := s.Get(ctx, v1ref); !errdefs.IsNotFound(err) {
		t.Fatalf("removed tag still resolves: %v", err)
	}
	if err := s.Remove(ctx, v2ref); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, id); !errdefs.IsNotFound(err) {
		t.Fatalf("image still there after removing its last tag: %v", err)
	}
	if blobs := readdirNames(t, filepath.Join(s.root, dirBlobs)); len(blobs) != 0 {
		t.Fatalf("blobs left after the image went: %v", blobs)
	}
}

func TestPullRejectsHostileLayersAndWritesNothingOutsideTheStore(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []file
	}{
		{"path traversal", []file{{name: "../../escaped-traversal", body: "x"}}},
		{"symlink escape", []file{{name: "link", typ: '2', link: "/tmp/berth-escape-dir"}, {name: "link/escaped-symlink", body: "x"}}},
		{"hardlink escape", []file{{name: "hard", typ: '1', link: "../../../../../etc/passwd"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			outside := t.TempDir()
			reg := newTestRegistry(t)
			img := imageOf(t, v1.Config{}, newLayer(t, gzipped, file{name: "ok", body: "ok"}), newLayer(t, gzipped, tc.files...))
			ref := reg.push(t, "hostile:1", img)
			root := filepath.Join(outside, "a", "b", "c", "store")
			s, err := Open(context.Background(), Options{Root: root, Log: zaptest.NewLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			_, err = s.Pull(context.Background(), ref, nil)
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("pull error %v, want invalid argument", err)
			}
			var stray []string
			filepath.Walk(outside, func(p string, info os.FileInfo, err error) error {
				if err == nil && strings.HasPrefix(info.Name(), "escaped") {
					stray = append(stray, p)
				}
				return nil
			})
			if _, err := os.Lstat("/tmp/berth-escape-dir/escaped-symlink"); err == nil {
				stray = append(stray, "/tmp/berth-escape-dir/escaped-symlink")
			}
			if len(stray) > 0 {
				t.Fatalf("hostile layer wrote %v", stray)
			}
			if n := len(layerDirs(t, s)); n != 1 {
				t.Fatalf("%d layer dirs, want only the good base layer", n)
			}
		})
	}
}

func TestManyLayerImageMounts(t *testing.T) {
	reg := newTestRegistry(t)
	var layers []*memLayer
	for i := range 70 {
		layers = append(layers, newLayer(t, gzipped, file{name: fmt.Sprintf("layer-%02d", i), body: fmt.Sprint(i)}))
	}
	s := openTestStore(t, Config{MaxConcurrentDownloads: 8})
	id := mustPull(t, s, reg.push(t, "many:70", imageOf(t, v1.Config{}, layers...)))
	target := mountTestSnapshot(t, s, "many", id)
	if names := readdirNames(t, target); len(names) != 70 || names[0] != "layer-00" || names[69] != "layer-69" {
		t.Fatalf("rootfs of the 70-layer image has %d entries: %v", len(names), names)
	}
}

func TestPullFailsWhenTheRegistryStalls(t *testing.T) {
	reg := newTestRegistry(t)
	l := newLayer(t, gzipped, file{name: "slow", body: strings.Repeat("s", 1<<16)})
	ref := reg.push(t, "slow:1", imageOf(t, v1.Config{}, l))
	reg.fault(l.digest(), func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(l.blob)))
		w.Write(l.blob[:len(l.blob)/2])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	s := openTestStore(t, Config{StallTimeoutSeconds: 1})
	_, err := s.Pull(context.Background(), ref, nil)
	if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), "no data") || !strings.Contains(err.Error(), l.digest()) {
		t.Fatalf("pull error %v, want unavailable naming the silent blob", err)
	}
}

func TestPinnedImagesAreReportedPinned(t *testing.T) {
	reg := newTestRegistry(t)
	ref := reg.push(t, "pause:3.10", imageOf(t, v1.Config{}, newLayer(t, gzipped, file{name: "p", body: "p"})))
	other := reg.push(t, "other:1", imageOf(t, v1.Config{}, newLayer(t, gzipped, file{name: "o", body: "o"})))
	s := openTestStore(t, Config{PinnedImages: []string{ref}})
	pinned, _ := s.Get(context.Background(), mustPull(t, s, ref))
	unpinned, _ := s.Get(context.Background(), mustPull(t, s, other))
	if !pinned.Pinned || unpinned.Pinned {
		t.Fatalf("pinned %v and %v, want true and false", pinned.Pinned, unpinned.Pinned)
	}
}

func TestAStoredBlobThatNoLongerUnpacksIsFetchedAgain(t *testing.T) {
	reg := newTestRegistry(t)
	l := newLayer(t, gzipped, file{name: "f", body: "f"})
	ref := reg.push(t, "rot:1", imageOf(t, v1.Config{}, l))
	s := openTestStore(t, Config{})
	ctx := context.Background()
	id := mustPull(t, s, ref)
	// The unpacked layer is lost while its blob stays, and the blob rots.
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketLayers).Delete([]byte(mustGet(t, s, id).ChainIDs[0])) }); err != nil {
		t.Fatal(err)
	}
	// Rotten at its size, it is found out by the unpack, dropped, and
	// fetched by the next pull.
	blob := s.blobPath(digestOf(l.digest()).Encoded())
	st, err := os.Stat(blob)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blob, bytes.Repeat([]byte("r"), int(st.Size())), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pull(ctx, ref, nil); err == nil {
		t.Fatal("pull over a rotten blob succeeded")
	}
	mustPull(t, s, ref)
	if n := reg.blobGets(l.digest()); n != 2 {
		t.Fatalf("layer fetched %d times, want again after its stored copy failed", n)
	}
	// Rotten to another size than the manifest's, it is hashed, dropped
	// and fetched again by the same pull, not held against the manifest.
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketLayers).Delete([]byte(mustGet(t, s, id).ChainIDs[0])) }); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blob, []byte("rotten"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustPull(t, s, ref)
	if n := reg.blobGets(l.digest()); n != 3 {
		t.Fatalf("layer fetched %d times, want once more for the blob rotten to another size", n)
	}
}

func mustGet(t *testing.T, s *Store, ref string) Image {
	t.Helper()
	img, err := s.Get(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestRemoveDuringAPullKeepsTheLayersThePullUses(t *testing.T) {
	reg := newTestRegistry(t)
	refA, refB, top := pushTwoOnABase(t, reg)
	s := openTestStore(t, Config{})
	ctx := context.Background()
	idA := mustPull(t, s, refA)

	started, release := make(chan struct{}), make(chan struct{})
	reg.fault(top.digest(), func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		w.Write(top.blob)
	})
	pulled := make(chan error, 1)
	go func() { _, err := s.Pull(ctx, refB, nil); pulled <- err }()
	<-started // b's pull found the shared base stored and is fetching its top
	if err := s.Remove(ctx, idA); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-pulled; err != nil {
		t.Fatalf("pull of b while a was removed: %v", err)
	}
	target := mountTestSnapshot(t, s, "c", mustGet(t, s, refB).ID)
	if names := readdirNames(t, target); !slices.Equal(names, []string{"b", "base"}) {
		t.Fatalf("b's rootfs has %v", names)
	}
}

func TestPullWithBearerTokensFromPasswordsAndIdentityTokens(t *testing.T) {
	reg := newTestRegistry(t)
	ref := reg.push(t, "tokened:1", imageOf(t, v1.Config{}, newLayer(t, gzipped, file{name: "t", body: "t"})))
	reg.requireBearer("erin", "identity-s3cret")
	for _, tc := range []struct {
		name string
		auth *Auth
		ok   bool
	}{
		{"no credentials are refused", nil, false},
		{"a password is exchanged for a token", &Auth{Username: "erin", Password: "identity-s3cret"}, true},
		{"an identity token is exchanged as a refresh token", &Auth{Username: "erin", IdentityToken: "identity-s3cret"}, true},
		{"a registry token is used as it is", &Auth{RegistryToken: testToken}, true},
		{"a wrong identity token is refused", &Auth{Username: "erin", IdentityToken: "wrong"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openTestStore(t, Config{})
			_, err := s.Pull(context.Background(), ref, tc.auth)
			if tc.ok && err != nil {
				t.Fatal(err)
			}
			if !tc.ok && !errdefs.IsUnauthorized(err) {
				t.Fatalf("error %v, want unauthenticated", err)
			}
		})
	}
}

func TestFsInfoCountsContainerWritableLayersApart(t *testing.T) {
	reg := newTestRegistry(t)
	s := openTestStore(t, Config{})
	ctx := context.Background()
	id := mustPull(t, s, reg.push(t, "fs:1", imageOf(t, v1.Config{}, newLayer(t, gzipped, file{name: "f", body: "f"}))))
	imgs, ctrs, err := s.FsInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if imgs[0].Mountpoint != s.root || ctrs[0].Mountpoint != filepath.Join(s.root, dirSnapshots) || imgs[0].Timestamp.IsZero() {
		t.Fatalf("filesystems %+v and %+v: want the store and its snapshots", imgs[0], ctrs[0])
	}
	target := mountTestSnapshot(t, s, "writer", id)
	if err := os.WriteFile(filepath.Join(target, "written"), make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	s.invalidateUsage()
	imgs2, ctrs2, err := s.FsInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ctrs2[0].UsedBytes < ctrs[0].UsedBytes+1<<20 || ctrs2[0].InodesUsed <= ctrs[0].InodesUsed {
		t.Fatalf("container fs %+v did not grow by the 1 MiB written from %+v", ctrs2[0], ctrs[0])
	}
	if imgs2[0].UsedBytes != imgs[0].UsedBytes {
		t.Fatalf("image fs changed from %d to %d bytes by a container's write", imgs[0].UsedBytes, imgs2[0].UsedBytes)
	}
}

func TestStartUpRemovesOnlyStaleUnusedBlobs(t *testing.T) {
	root := t.TempDir()
	ctx := context.Background()
	s, err := Open(ctx, Options{Root: root, Log: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	stale, fresh := digestOf(digest.FromString("stale").String()), digestOf(digest.FromString("fresh").String())
	for _, d := range []digest.Digest{stale, fresh} {
		if err := s.writeBlob(d, []byte(d.String())); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * orphanAge)
	if err := os.Chtimes(s.blobPath(stale.Encoded()), old, old); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(ctx, Options{Root: root, Log: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.hasBlob(stale) || !s.hasBlob(fresh) {
		t.Fatalf("after start-up stale blob kept=%v, fresh blob kept=%v; want false, true", s.hasBlob(stale), s.hasBlob(fresh))
	}
}
