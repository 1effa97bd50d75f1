// Command bench measures Berth against containerd, side by side, through
// the CRI as kubelet drives it: pod start and teardown, ExecSync, the list
// and stats calls kubelet makes every second, cold image pulls, and the
// memory and CPU the runtime's processes use. It starts each runtime itself
// with private directories, the same CNI conflist and the same loopback
// registry, alternates them run by run, and reports medians, the ratio
// Berth/containerd and the goals as a table, JSON and Markdown.
//
//	go run ./hack/bench -reps 3            # the full benchmark
//	go run ./hack/bench -short -runtimes berth  # a few pods, a small image
//
// It must run as root (namespaces, cgroups, mounts).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/berth-runtime/berth/hack/bench/report"
)

// options are the benchmark's flags.
type options struct {
	runtimes       []string
	reps           int
	seqPods        int
	parPods        int
	parallel       int
	burstPods      int // pods started all at once, then removed all at once
	pods           int // running pods for the steady-state workloads
	execs          int
	lists          int
	cpuWindow      time.Duration
	largeMB        int64
	largeLayers    int
	sharedLayers   int
	profile        bool
	profileSeconds int
	short          bool

	results string // parent of the timestamped results directory
	readme  string // README whose table is replaced; "" leaves it
	berthd  string // prebuilt berthd; "" builds one
	module  string // module root, for building berthd
	workdir string
	cniBin  string
	bridge  string
	subnet  string
}

func main() {
	if dir := os.Getenv(nullCRIEnv); dir != "" {
		if err := serveNullCRI(dir); err != nil {
			fmt.Fprintln(os.Stderr, "bench: null CRI server:", err)
			os.Exit(1)
		}
		return
	}
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	res, dir, err := benchmark(ctx, o)
	if res != nil {
		fmt.Print(res.Table())
		fmt.Printf("results: %s\n", dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var o options
	runtimes := fs.String("runtimes", "berth,containerd", "comma-separated runtimes to run: berth, containerd")
	fs.IntVar(&o.reps, "reps", 3, "repetitions per runtime; containerd runs first in odd ones, berth in even ones")
	fs.IntVar(&o.seqPods, "seq-pods", 50, "pods started one after another")
	fs.IntVar(&o.parPods, "par-pods", 50, "pods started -parallel at a time")
	fs.IntVar(&o.parallel, "parallel", 10, "concurrent pod starts and teardowns for -par-pods")
	fs.IntVar(&o.burstPods, "burst-pods", 100, "pods started all at once, then stopped and removed all at once (pod_start.burst, pod_teardown.burst)")
	fs.IntVar(&o.pods, "pods", 100, "running pods for the list, memory and CPU workloads (more are started if -seq-pods + -par-pods fall short)")
	fs.IntVar(&o.execs, "execs", 200, "ExecSync calls")
	fs.IntVar(&o.lists, "lists", 200, "calls of each list RPC")
	fs.DurationVar(&o.cpuWindow, "cpu-window", 60*time.Second, "how long CPU is measured with idle pods and a poller")
	fs.Int64Var(&o.largeMB, "large-mb", 200, "size of the large image's data layers in MiB")
	fs.IntVar(&o.largeLayers, "large-layers", 8, "data layers of the large image")
	fs.IntVar(&o.sharedLayers, "shared-layers", 6, "lower data layers the sibling image shares with the large one")
	fs.BoolVar(&o.profile, "profile", true, "capture berthd's CPU and heap profiles in its last repetition")
	fs.IntVar(&o.profileSeconds, "profile-seconds", 20, "length of berthd's CPU profile, taken under a pod start, exec and list load after the measured workloads")
	fs.BoolVar(&o.short, "short", false, "a quick run: few pods, a small image, a short CPU window, one repetition (flags given explicitly still win)")
	fs.StringVar(&o.results, "results", "results", "directory under which results/<timestamp>/ is written")
	fs.StringVar(&o.readme, "readme", "", "README.md whose benchmark table (between the bench markers) is replaced with this run's")
	fs.StringVar(&o.berthd, "berthd", "", "berthd binary to run; empty builds ./cmd/berthd from -module")
	fs.StringVar(&o.module, "module", ".", "Berth's module root (for building berthd)")
	fs.StringVar(&o.workdir, "workdir", "", "scratch directory for the daemons (default: a new one under $TMPDIR)")
	fs.StringVar(&o.cniBin, "cni-bin", "/usr/lib/cni", "CNI plugin directory")
	fs.StringVar(&o.bridge, "bridge", "bbench0", "bridge the benchmark's network creates")
	fs.StringVar(&o.subnet, "subnet", "10.231.0.0/16", "the benchmark network's pod subnet")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.short {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		def := func(name string, apply func()) {
			if !set[name] {
				apply()
			}
		}
		def("reps", func() { o.reps = 1 })
		def("seq-pods", func() { o.seqPods = 3 })
		def("par-pods", func() { o.parPods = 3 })
		def("parallel", func() { o.parallel = 2 })
		def("pods", func() { o.pods = 6 })
		def("burst-pods", func() { o.burstPods = 6 })
		def("execs", func() { o.execs = 10 })
		def("lists", func() { o.lists = 10 })
		def("cpu-window", func() { o.cpuWindow = 3 * time.Second })
		def("large-mb", func() { o.largeMB = 8 })
		def("profile", func() { o.profile = false })
		def("profile-seconds", func() { o.profileSeconds = 3 })
	}
	for _, rt := range strings.Split(*runtimes, ",") {
		switch rt = strings.TrimSpace(rt); rt {
		case report.Berth, report.Containerd:
			o.runtimes = append(o.runtimes, rt)
		case "":
		default:
			return o, fmt.Errorf("-runtimes: unknown runtime %q (berth, containerd)", rt)
		}
	}
	switch {
	case len(o.runtimes) == 0:
		return o, fmt.Errorf("-runtimes: none given")
	case o.reps < 1:
		return o, fmt.Errorf("-reps %d: at least 1", o.reps)
	case o.seqPods < 1 || o.parPods < 1 || o.parallel < 1 || o.pods < 1 || o.burstPods < 1:
		return o, fmt.Errorf("pod counts must be at least 1")
	case o.execs < 1 || o.lists < 1:
		return o, fmt.Errorf("-execs and -lists must be at least 1")
	case o.largeLayers < 1 || o.sharedLayers < 0 || o.sharedLayers > o.largeLayers || o.largeMB < 1:
		return o, fmt.Errorf("large image shape: %d MiB in %d layers, %d shared", o.largeMB, o.largeLayers, o.sharedLayers)
	}
	if os.Geteuid() != 0 {
		return o, fmt.Errorf("must run as root")
	}
	return o, nil
}

// order is the runtimes of repetition rep (1-based): containerd first in
// odd repetitions, berth first in even ones, so that drift on a noisy
// machine weighs on both alike.
func order(runtimes []string, rep int) []string {
	if len(runtimes) < 2 {
		return runtimes
	}
	first := report.Containerd
	if rep%2 == 0 {
		first = report.Berth
	}
	out := []string{first}
	for _, rt := range runtimes {
		if rt != first {
			out = append(out, rt)
		}
	}
	return out
}

// benchmark sets up, runs every repetition, and writes the results.
func benchmark(ctx context.Context, o options) (*report.Result, string, error) {
	stamp := time.Now().UTC()
	resDir := filepath.Join(o.results, stamp.Format("20060102T150405Z"))
	if err := os.MkdirAll(filepath.Join(resDir, "logs"), 0o755); err != nil {
		return nil, "", fmt.Errorf("create results dir: %w", err)
	}
	work := o.workdir
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "berth-bench-"); err != nil {
			return nil, "", err
		}
	} else if err := os.MkdirAll(work, 0o711); err != nil {
		return nil, "", err
	}
	defer os.RemoveAll(work)

	berthd := o.berthd
	if berthd == "" && contains(o.runtimes, report.Berth) {
		berthd = filepath.Join(work, "berthd")
		logf("building berthd")
		if err := buildBerthd(ctx, o.module, berthd); err != nil {
			return nil, "", err
		}
	}
	logf("generating images (%d MiB in %d layers) and starting the registry", o.largeMB, o.largeLayers)
	e, err := newEnv(work, o)
	if err != nil {
		return nil, "", err
	}
	defer e.close()

	var runs []*report.Run
	profiles := map[string]string{}
	versions := map[string]string{}
	for rep := 1; rep <= o.reps; rep++ {
		for _, rt := range order(o.runtimes, rep) {
			if ctx.Err() != nil {
				break
			}
			logf("rep %d/%d: %s", rep, o.reps, rt)
			r := &runner{
				o: o, env: e, rep: rep, runtime: rt, berthd: berthd, resDir: resDir,
				profile:  o.profile && rt == report.Berth && rep == o.reps,
				profiles: profiles,
			}
			run, version := r.run(ctx)
			if version != "" {
				versions[rt] = version
			}
			runs = append(runs, run)
		}
	}
	res := &report.Result{
		Date:     stamp,
		Machine:  machine(versions),
		Options:  o.describe(e.pauseKind),
		Runtimes: o.runtimes,
		Rows:     report.Build(catalog(), o.runtimes, runs),
		Runs:     runs,
		Profiles: profiles,
	}
	if len(o.runtimes) == 2 {
		res.Goals = report.Check(res, report.Goals)
	}
	if err := res.Write(resDir); err != nil {
		return res, resDir, err
	}
	failed := 0
	for _, run := range runs {
		failed += len(run.Errors)
	}
	if o.readme != "" {
		if err := updateReadme(o.readme, res); err != nil {
			return res, resDir, err
		}
	}
	if ctx.Err() != nil {
		return res, resDir, ctx.Err()
	}
	if failed > 0 {
		return res, resDir, fmt.Errorf("%d workload runs failed (see the errors above)", failed)
	}
	return res, resDir, nil
}

// describe lists the options that shape the figures, for the report.
func (o options) describe(pause string) map[string]string {
	return map[string]string{
		"pause":         pause,
		"reps":          fmt.Sprint(o.reps),
		"seq-pods":      fmt.Sprint(o.seqPods),
		"par-pods":      fmt.Sprint(o.parPods),
		"parallel":      fmt.Sprint(o.parallel),
		"pods":          fmt.Sprint(o.pods),
		"execs":         fmt.Sprint(o.execs),
		"lists":         fmt.Sprint(o.lists),
		"cpu-window":    o.cpuWindow.String(),
		"large-mb":      fmt.Sprint(o.largeMB),
		"large-layers":  fmt.Sprint(o.largeLayers),
		"shared-layers": fmt.Sprint(o.sharedLayers),
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, a...))
}
