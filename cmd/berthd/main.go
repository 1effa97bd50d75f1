// Command berthd is Berth's daemon: a Kubernetes container runtime serving
// the CRI over a unix socket.
//
// The same binary re-executes itself for internal roles, chosen by argv[0]
// (see roles), so there is one thing to install.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/berth-runtime/berth/cmd/berthd/config"
	"github.com/berth-runtime/berth/cri"
	"github.com/berth-runtime/berth/oci"
	_ "github.com/berth-runtime/berth/oci/nsenter" // joins a container's namespaces before the Go runtime starts (berth-exec)
	"github.com/berth-runtime/berth/sandbox"
	"github.com/berth-runtime/berth/sandbox/failpoint"
)

// roles are the internal programs berthd re-executes itself as; argv[0]
// names the role. Each role function never returns.
var roles = map[string]func(){
	"berth-init":    oci.InitMain,
	"berth-exec":    oci.ExecMain,
	"berth-monitor": sandbox.MonitorMain,
	// Run by the C constructor of sandbox/monitorc; the Go function only
	// refuses to go on as berthd if that did not take over.
	"berth-monitor-c": sandbox.MonitorCMain,
	"berth-podinit":   sandbox.PodInitMain,
	"berth-nsholder":  sandbox.NSHolderMain,
}

// berthd's main goroutine keeps the main thread. Goroutines that move
// their thread into a pod's namespaces lock it and exit, which ends a
// thread; the main thread cannot end, so Go would park it for good, still
// in that pod's namespaces: /proc/<berthd>/ns would name the pod's, and
// hold them after the pod is gone. Locked to main, it never runs such a
// goroutine. (Only an init function can lock the main thread to main.)
func init() { runtime.LockOSThread() }

func main() {
	if role, ok := roles[filepath.Base(os.Args[0])]; ok {
		// The roles are short-lived or outlive no pod, and lock what they
		// need themselves. A monitor whose main goroutine kept the main
		// thread paid a thread handoff at every block: about 8 ms more
		// per CreateContainer.
		runtime.UnlockOSThread()
		role()
		os.Exit(1) // a role that returns has failed
	}
	os.Exit(run(os.Args[1:]))
}

// run parses flags, builds the configuration and serves until a signal.
func run(args []string) int {
	fs := flag.NewFlagSet("berthd", flag.ContinueOnError)
	var (
		configPath   = fs.String("config", config.DefaultPath, "configuration file (TOML); a missing default file means all defaults")
		socket       = fs.String("socket", "", "CRI socket path (overrides the file's socket)")
		root         = fs.String("root", "", "persistent data directory (overrides root)")
		state        = fs.String("state", "", "volatile state directory (overrides state)")
		logLevel     = fs.String("log-level", "", "debug, info, warn or error (overrides log_level)")
		logFormat    = fs.String("log-format", "", "console or json (overrides log_format)")
		printDefault = fs.Bool("print-default-config", false, "print the default configuration file and exit")
		defaultNet   = fs.Bool("cni-default-network", false, "write Berth's default pod network into the CNI conf dir when it holds none (sets [cni] default_network)")
		version      = fs.Bool("version", false, "print the version and exit")
	)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *version {
		fmt.Printf("berthd %s\n", cri.Version)
		return 0
	}
	if *printDefault {
		out, err := config.Marshal(config.Default())
		if err != nil {
			fmt.Fprintln(os.Stderr, "berthd:", err)
			return 1
		}
		os.Stdout.Write(out)
		return 0
	}
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
	cfg, err := config.Load(*configPath, !explicit)
	if err != nil {
		fmt.Fprintln(os.Stderr, "berthd:", err)
		return 1
	}
	for _, o := range []struct {
		flag string
		into *string
	}{
		{*socket, &cfg.Socket}, {*root, &cfg.Root}, {*state, &cfg.State},
		{*logLevel, &cfg.LogLevel}, {*logFormat, &cfg.LogFormat},
	} {
		if o.flag != "" {
			*o.into = o.flag
		}
	}
	if *defaultNet {
		cfg.CNI.DefaultNetwork = true
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "berthd: config %s: %v\n", *configPath, err)
		return 1
	}
	// Read once, before anything runs: an unset failpoint costs nothing.
	if err := failpoint.Arm(); err != nil {
		fmt.Fprintln(os.Stderr, "berthd:", err)
		return 1
	}
	if err := serve(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "berthd:", err)
		return 1
	}
	return 0
}
