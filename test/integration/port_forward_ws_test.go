package integration

// Port-forward over the WebSocket protocol k8s.io/cri-streaming serves
// ("v4.channel.k8s.io"): each forwarded port has a data channel and an
// error channel, 2n and 2n+1, each opened by the server with the port
// number (2 bytes, little-endian); every message starts with its channel.
// client-go has no client for it (kubectl tunnels SPDY over WebSocket to
// the API server instead), so the test speaks it with gorilla/websocket.

import (
	"encoding/binary"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// wsForward is a WebSocket port-forward connection.
type wsForward struct {
	conn *websocket.Conn
	wmu  sync.Mutex
	mu   sync.Mutex
	got  map[byte]*strings.Builder // what arrived on each channel
	done chan struct{}             // the server closed the connection
}

// openWSForward asks berthd to forward ports of pod and connects to the
// URL over WebSocket.
func openWSForward(t *testing.T, d runtimeapi.RuntimeServiceClient, pod string, ports ...int32) *wsForward {
	t.Helper()
	resp, err := d.PortForward(ctxFor(t), &runtimeapi.PortForwardRequest{PodSandboxId: pod, Port: ports})
	if err != nil {
		t.Fatalf("PortForward: %v", err)
	}
	dialer := websocket.Dialer{Subprotocols: []string{"v4.channel.k8s.io"}, HandshakeTimeout: 30 * time.Second}
	conn, hresp, err := dialer.Dial(strings.Replace(resp.Url, "http", "ws", 1), http.Header{})
	if err != nil {
		t.Fatalf("WebSocket port-forward of %v: %v (%v)", ports, err, hresp)
	}
	t.Cleanup(func() { conn.Close() })
	f := &wsForward{conn: conn, got: map[byte]*strings.Builder{}, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		for {
			_, msg, err := conn.ReadMessage()
			if err != nil {
				return
			}
			if len(msg) == 0 {
				continue
			}
			f.mu.Lock()
			b := f.got[msg[0]]
			if b == nil {
				b = &strings.Builder{}
				f.got[msg[0]] = b
			}
			b.Write(msg[1:])
			f.mu.Unlock()
		}
	}()
	// Each channel first carries its port.
	for i, p := range ports {
		port := make([]byte, 2)
		binary.LittleEndian.PutUint16(port, uint16(p))
		for _, ch := range []byte{byte(2 * i), byte(2*i + 1)} {
			f.waitFor(t, ch, string(port))
		}
	}
	return f
}

func (f *wsForward) send(t *testing.T, channel byte, data string) {
	t.Helper()
	f.wmu.Lock()
	defer f.wmu.Unlock()
	if err := f.conn.WriteMessage(websocket.BinaryMessage, append([]byte{channel}, data...)); err != nil {
		t.Fatalf("write channel %d: %v", channel, err)
	}
}

func (f *wsForward) channel(ch byte) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b := f.got[ch]; b != nil {
		return b.String()
	}
	return ""
}

// waitFor waits until channel ch has carried want.
func (f *wsForward) waitFor(t *testing.T, ch byte, want string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(f.channel(ch), want); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("channel %d: no %q in 30 s; got %q", ch, want, tail(f.channel(ch)))
		}
	}
}

// checkWebSocketPortForward forwards the HTTP (8080) and echo (9000)
// servers of p's pod on one WebSocket connection, and a closed port on
// another.
func checkWebSocketPortForward(t *testing.T, p *ctrEnv) {
	t.Run("websocket", func(t *testing.T) {
		f := openWSForward(t, p.d.Runtime, p.pod, 8080, 9000)
		f.send(t, 0, "GET /index.html HTTP/1.0\r\n\r\n")
		f.send(t, 2, "ping over websocket\n")
		f.waitFor(t, 0, "hello from the pod")
		f.waitFor(t, 2, "ping over websocket\n")
		if e := f.channel(1) + f.channel(3); len(e) != 4 {
			t.Errorf("errors forwarding open ports: %q", e)
		}

		closed := openWSForward(t, p.d.Runtime, p.pod, 9)
		closed.waitFor(t, 1, "connection refused")
		select {
		case <-closed.done:
		case <-time.After(30 * time.Second):
			t.Error("the server kept the connection of a refused port open")
		}
	})
}
