package integration

// Terminal sizes at and past the protocol's bounds. A size travels as JSON
// on the resize stream and the library decodes it into uint16s: 0 and
// 65535 are sizes the pty takes, while a negative or larger value ends the
// library's reading of the resize stream (sizes sent after it are not
// applied) and nothing else: the command, its I/O and its exit status go
// on. client-go cannot send such values, so these tests speak SPDY
// themselves.

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/transport/spdy"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// rawTTY is a TTY session's SPDY streams, opened by hand.
type rawTTY struct {
	conn                   httpstream.Connection
	stdin, resize          httpstream.Stream
	out, errs              *syncBuffer
	outDone, errDone, done chan struct{}
}

// openRawTTY connects to a streaming URL with stdin, stdout and resize
// streams and a TTY, as remotecommand's v4 SPDY client does.
func openRawTTY(t *testing.T, rawURL string) *rawTTY {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	transport, upgrader, err := spdy.RoundTripperFor(&rest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	conn, proto, err := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, "POST", u).Dial("v4.channel.k8s.io")
	if err != nil {
		t.Fatalf("dial %s: %v", rawURL, err)
	}
	t.Cleanup(func() { conn.Close() })
	if proto != "v4.channel.k8s.io" {
		t.Fatalf("protocol %q", proto)
	}
	s := &rawTTY{conn: conn, out: &syncBuffer{}, errs: &syncBuffer{}, outDone: make(chan struct{}), errDone: make(chan struct{})}
	open := func(kind string) httpstream.Stream {
		h := http.Header{}
		h.Set("streamType", kind)
		st, err := conn.CreateStream(h)
		if err != nil {
			t.Fatalf("create the %s stream: %v", kind, err)
		}
		return st
	}
	errStream := open("error")
	s.stdin = open("stdin")
	stdout := open("stdout")
	s.resize = open("resize")
	go copyInto(s.out, stdout, s.outDone)
	go copyInto(s.errs, errStream, s.errDone)
	return s
}

func copyInto(b *syncBuffer, r io.Reader, done chan struct{}) {
	defer close(done)
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		b.WriteString(string(buf[:n]))
		if err != nil {
			return
		}
	}
}

// sendSize writes one size as raw JSON on the resize stream.
func (s *rawTTY) sendSize(t *testing.T, width, height int64) {
	t.Helper()
	if _, err := fmt.Fprintf(s.resize, `{"Width":%d,"Height":%d}`, width, height); err != nil {
		t.Fatalf("send size %dx%d: %v", width, height, err)
	}
}

// waitAnswer sends a line to the shell (which answers each with `stty
// size`) until the output since the call holds want.
func (s *rawTTY) waitAnswer(t *testing.T, want string) {
	t.Helper()
	mark := len(s.out.String())
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if strings.Contains(s.out.String()[mark:], want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q from the shell in 30 s; output since: %q", want, tail(s.out.String()[mark:]))
		}
		if _, err := s.stdin.Write([]byte("x\r")); err != nil {
			t.Fatalf("write stdin: %v", err)
		}
	}
}

// checkResizeBounds takes a session through the sizes at and past the
// bounds; the shell on its other end answers each line with `stty size`.
// (busybox's stty shows sides of 30000 and more as 80 columns and 24
// rows, and fails on a terminal of 0 by 0.)
func checkResizeBounds(t *testing.T, s *rawTTY) {
	t.Helper()
	for _, c := range []struct {
		width, height int64
		want          string
	}{
		{123, 45, "\n45 123"},
		{65535, 65535, "\n24 80"},
		{29999, 29999, "\n29999 29999"},
		{0, 0, "\nstty: standard input"},
		{200, 100, "\n100 200"},
	} {
		s.sendSize(t, c.width, c.height)
		s.waitAnswer(t, c.want)
	}
	// Past the bounds: the size is refused, the library reads no more
	// sizes, and the session goes on with the last good one.
	s.sendSize(t, -1, 70000)
	s.sendSize(t, 77, 88)
	mark := len(s.out.String())
	for range 10 {
		s.waitAnswer(t, "\n100 200")
	}
	if out := s.out.String()[mark:]; strings.Contains(out, "88 77") || strings.Contains(out, "24 80") {
		t.Errorf("the size changed after an invalid one: %q", tail(out))
	}
}

// tail is the end of a long output, for a failure message.
func tail(s string) string {
	if len(s) > 300 {
		return "..." + s[len(s)-300:]
	}
	return s
}

func TestExecWithNegativeAndHugeTerminalSizesGoesOn(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		id := e.mustRun(t, e.config("resize", "sleep 3600"))
		u := e.execURL(t, &runtimeapi.ExecRequest{ContainerId: id, Tty: true, Stdin: true, Stdout: true,
			Cmd: []string{"sh", "-c", "while read x; do case $x in q) exit 5;; esac; stty size; done"}})
		s := openRawTTY(t, u)
		checkResizeBounds(t, s)
		// The exit status still arrives on the error stream.
		if _, err := s.stdin.Write([]byte("q\r")); err != nil {
			t.Fatal(err)
		}
		select {
		case <-s.errDone:
		case <-time.After(30 * time.Second):
			t.Fatal("the exec did not end after q")
		}
		if st := s.errs.String(); !strings.Contains(st, `"ExitCode"`) || !strings.Contains(st, `"message":"5"`) {
			t.Errorf("exit status on the error stream: %q, want exit code 5", st)
		}
		if ps := e.processes(t, id); strings.Contains(ps, "while read") || strings.Contains(ps, " Z ") {
			t.Errorf("the exec left processes:\n%s", ps)
		}
		if _, err := e.d.Runtime.Version(ctxFor(t), &runtimeapi.VersionRequest{}); err != nil {
			t.Errorf("berthd after the bad sizes: %v", err)
		}
	})
}

func TestAttachWithNegativeAndHugeTerminalSizesGoesOn(t *testing.T) {
	forEachHandler(t, func(t *testing.T, e *ctrEnv) {
		cfg := e.config("tty", "while read x; do stty size; done")
		cfg.Stdin, cfg.Tty = true, true
		id := e.mustRun(t, cfg)
		attachURL := func() string {
			resp, err := e.d.Runtime.Attach(ctxFor(t), &runtimeapi.AttachRequest{ContainerId: id, Stdin: true, Stdout: true, Tty: true})
			if err != nil {
				t.Fatalf("Attach: %v", err)
			}
			return resp.Url
		}
		s := openRawTTY(t, attachURL())
		checkResizeBounds(t, s)
		s.conn.Close()
		// The container runs on, and a new attach resizes its terminal.
		if st := e.mustStatus(t, id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Fatalf("the container after the attach with bad sizes: %v", st.State)
		}
		s = openRawTTY(t, attachURL())
		s.sendSize(t, 99, 33)
		s.waitAnswer(t, "33 99")
	})
}
