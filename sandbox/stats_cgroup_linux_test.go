package sandbox

import (
	"errors"
	"os"
	"strconv"
	"testing"
	"time"
)

func TestReadCgroupParsesV1AndV2StatFiles(t *testing.T) {
	for _, tc := range []struct {
		name string
		dirs cgroupDirs
		want cgroupSample
		// workingSet and available follow from the sample.
		workingSet, available uint64
	}{
		{
			name: "v1 reads cpuacct, memory.stat's hierarchical limit and totals, and pids",
			dirs: cgroupDirs{cpu: "testdata/cgroup/v1/cpuacct", memory: "testdata/cgroup/v1/memory", pids: "testdata/cgroup/v1/pids"},
			want: cgroupSample{cpuNanos: 5123456789, hasCPU: true, hasMem: true, pids: 3, memory: memorySample{
				usage: 52428800, limit: 104857600, inactiveFile: 10485760, rss: 31457280, pageFaults: 7340, majorPageFaults: 12}},
			workingSet: 52428800 - 10485760,
			available:  104857600 - (52428800 - 10485760),
		},
		{
			name: "v1 with no limit has no available bytes, and no CPU or pids where those controllers are not mounted",
			dirs: cgroupDirs{memory: "testdata/cgroup/v1-unlimited/memory"},
			want: cgroupSample{hasMem: true, memory: memorySample{usage: 4096, inactiveFile: 8192}},
			// inactive file pages above the usage leave no working set
			workingSet: 0,
			available:  0,
		},
		{
			name: "v2 reads cpu.stat in microseconds, memory.max of max as no limit, anon as rss",
			dirs: cgroupDirs{v2: true, cpu: "testdata/cgroup/v2", memory: "testdata/cgroup/v2", pids: "testdata/cgroup/v2"},
			want: cgroupSample{cpuNanos: 2500000000, hasCPU: true, hasMem: true, pids: 5, memory: memorySample{
				usage: 73400320, inactiveFile: 20971520, rss: 41943040, pageFaults: 9001, majorPageFaults: 7}},
			workingSet: 73400320 - 20971520,
			available:  0,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newCgroupReader(tc.dirs)
			defer r.close()
			got, err := r.read()
			if err != nil {
				t.Fatal(err)
			}
			if got.at.IsZero() {
				t.Error("the sample has no time")
			}
			got.at = time.Time{}
			if got != tc.want {
				t.Errorf("sample\n got %+v\nwant %+v", got, tc.want)
			}
			if ws := got.memory.workingSet(); ws != tc.workingSet {
				t.Errorf("working set %d, want %d", ws, tc.workingSet)
			}
			if av := got.memory.available(); av != tc.available {
				t.Errorf("available %d, want %d", av, tc.available)
			}
		})
	}
}

func TestReadCgroupOfAGoneCgroupIsNotExist(t *testing.T) {
	d := t.TempDir() + "/gone"
	_, err := newCgroupReader(cgroupDirs{v2: true, cpu: d, memory: d, pids: d}).read()
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("reading a removed cgroup: %v, want os.ErrNotExist", err)
	}
}

func TestACgroupReaderRereadsItsOpenFiles(t *testing.T) {
	d := t.TempDir()
	write := func(usec string) {
		if err := os.WriteFile(d+"/cpu.stat", []byte("usage_usec "+usec+"\nuser_usec 1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("1000")
	r := newCgroupReader(cgroupDirs{v2: true, cpu: d})
	defer r.close()
	for _, usec := range []string{"1000", "2000000"} {
		write(usec) // rewritten in place: the same inode, still open
		s, err := r.read()
		if err != nil {
			t.Fatal(err)
		}
		if want, _ := strconv.ParseUint(usec, 10, 64); s.cpuNanos != want*1000 || !s.hasCPU || s.hasMem {
			t.Errorf("after writing usage_usec %s: %+v", usec, s)
		}
	}
}

func TestStatValueMatchesWholeKeysOnly(t *testing.T) {
	data := []byte("total_rss_huge 7\ntotal_rss 42\nrss 1")
	for _, tc := range []struct {
		name, key string
		want      uint64
		ok        bool
	}{
		{"a key that prefixes a longer one is found on its own line", "total_rss", 42, true},
		{"the last line needs no newline", "rss", 1, true},
		{"a prefix of a key is not a key", "total_rs", 0, false},
		{"a missing key is not found", "pgfault", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := statValue(data, tc.key)
			if got != tc.want || ok != tc.ok {
				t.Errorf("statValue(%q) = %d, %v; want %d, %v", tc.key, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestNanoCoresIsTheAverageSinceTheLastSample(t *testing.T) {
	var s statsState
	t0 := time.Unix(1000, 0)
	if _, ok := s.nanoCores(1e9, t0); ok {
		t.Error("the first sample gave a rate")
	}
	s.last = cgroupSample{at: t0, cpuNanos: 1e9, hasCPU: true}
	// 0.5 s of CPU over 2 s: a quarter of a core.
	if n, ok := s.nanoCores(1.5e9, t0.Add(2*time.Second)); !ok || n != 250_000_000 {
		t.Errorf("rate %d (%v), want 250000000 nanocores", n, ok)
	}
	if _, ok := s.nanoCores(2e9, t0); ok {
		t.Error("a sample no later than the last gave a rate")
	}
	if _, ok := s.nanoCores(0.5e9, t0.Add(time.Second)); ok {
		t.Error("a counter that went backwards gave a rate")
	}
	s.last = cgroupSample{at: t0, hasMem: true}
	if _, ok := s.nanoCores(2e9, t0.Add(time.Second)); ok {
		t.Error("a rate from a last sample without CPU")
	}
}

func TestLayerWalksAreReusedLongerTheLongerTheyTake(t *testing.T) {
	for _, tc := range []struct {
		name string
		took time.Duration
		want time.Duration
	}{
		{"a quick walk is reused for the minimum", time.Millisecond, layerMinAge},
		{"a 100 ms walk is reused for 10 s", 100 * time.Millisecond, 10 * time.Second},
		{"a very slow walk is reused at most for the maximum", 5 * time.Second, layerMaxAge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := layerFresh(tc.took); got != tc.want {
				t.Errorf("layerFresh(%v) = %v, want %v", tc.took, got, tc.want)
			}
		})
	}
}

func TestRemovingClosesTheCgroupFilesForGood(t *testing.T) {
	d := t.TempDir()
	if err := os.WriteFile(d+"/cpu.stat", []byte("usage_usec 1000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := newCgroupReader(cgroupDirs{v2: true, cpu: d})
	s := &statsState{cgroup: r}
	if _, err := r.read(); err != nil {
		t.Fatal(err)
	}
	if r.cpu.f == nil {
		t.Fatal("cpu.stat is not kept open after a read")
	}
	s.remove() // the container or pod is removed
	if r.cpu.f != nil || s.cgroup != nil {
		t.Error("cpu.stat is still open after remove")
	}
	// A stats call that still holds the container opens nothing again.
	if _, err := (&Manager{sampler: newStatsSampler(0), bg: newBackground()}).cgroupStats(s, d); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("sampling a removed container's cgroup: %v, want os.ErrNotExist", err)
	}
	if s.cgroup != nil {
		t.Error("a sample after remove opened the cgroup again")
	}
}
