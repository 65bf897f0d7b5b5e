package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/ofaserve/ofaserve/bench/kserve/grpcclient"
	pb "github.com/ofaserve/ofaserve/protocol/inferencepb"
)

// GRPCHuge is case 4: one 300 MB ModelInfer message; handled when refused
// with RESOURCE_EXHAUSTED, and the server's RSS may grow by < 100 MB.
func (e *Env) GRPCHuge(ctx context.Context) Result {
	r := Result{Case: "grpc-300MB"}
	if e.GRPC == "" {
		r.Err = fmt.Errorf("no gRPC address (--grpc)")
		return r
	}
	c, err := grpcclient.Dial(e.GRPC)
	if err != nil {
		r.Err = err
		return r
	}
	defer c.Close()
	chw, err := e.rawShape(ctx)
	if err != nil {
		r.Err = err
		return r
	}
	// About 300 MB of IMAGE rows, shaped as the model's input so that only
	// the size is wrong.
	item := 4 * chw[0] * chw[1] * chw[2]
	n := max(300_000_000/item, 1)
	m := &pb.ModelInferRequest{
		ModelName:        e.RawModel,
		Inputs:           []*pb.ModelInferRequest_InferInputTensor{{Name: "IMAGE", Datatype: "FP32", Shape: append([]int64{n}, chw...)}},
		RawInputContents: [][]byte{make([]byte, n*item)},
	}
	base, _ := ReadRSS(e.PID)
	smp := StartSampler(e.PID, 20*time.Millisecond)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	start := time.Now()
	o := c.Infer(ctx, m)
	lat := time.Since(start)
	_, peak, _ := smp.Stop()
	class := o.Status
	if class == "" {
		class = "OK"
	}
	lost := o.Status == "timeout" || o.Status == "gRPC Unavailable"
	var t Tally
	t.Add(class, o.Status == "gRPC ResourceExhausted", lost)
	r.Tried, r.Handled, r.Lost = t.Tried, t.Handled, t.Lost
	r.Figures = append(r.Figures,
		Figure{Name: "answer", Value: fmt.Sprintf("%s after %s (%d MB message)", class, ms(lat), n*item/1_000_000), Target: "RESOURCE_EXHAUSTED", Met: o.Status == "gRPC ResourceExhausted"},
		Figure{Name: "RSS growth", Value: fmt.Sprintf("%s MB (%s → peak %s MB)", MB(max(peak-base, 1)), MB(base), MB(peak)), Target: "< 100 MB", Met: peak-base < 100e6},
	)
	if o.Err != nil {
		r.Notes = append(r.Notes, firstLine(o.Err.Error()))
	}
	return r
}

func firstLine(s string) string {
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

// heldConn opens a connection, writes what open writes and reads until the
// server closes it or wait passes; it returns how long the connection
// lived and whether the server cut it.
func (e *Env) heldConn(ctx context.Context, wait time.Duration, open func(net.Conn, *bufio.Reader) error) (time.Duration, bool, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "tcp", e.HostPort)
	if err != nil {
		return 0, false, err
	}
	defer c.Close()
	br := bufio.NewReader(c)
	start := time.Now()
	if err := open(c, br); err != nil {
		return 0, false, err
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 4096)
	for {
		_, err := br.Read(buf)
		if err == nil {
			continue // a 408 or 400 the server writes before closing
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return time.Since(start), false, nil
		}
		return time.Since(start), true, nil // EOF or reset: cut
	}
}

// SlowConns is case 5: two connections that send half a body and stop, two
// idle keep-alive connections after one answered request; each must be
// closed by the server (its read and idle timeouts) within s.SlowWait.
func (e *Env) SlowConns(ctx context.Context, s Settings) Result {
	r := Result{Case: "slow-idle-conns"}
	slow := func(c net.Conn, _ *bufio.Reader) error {
		_, err := fmt.Fprintf(c, "POST /v2/models/%s/infer HTTP/1.1\r\nHost: chaos\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"inputs\":[", e.Model)
		return err
	}
	idle := func(c net.Conn, br *bufio.Reader) error {
		if _, err := fmt.Fprintf(c, "GET /v2/health/live HTTP/1.1\r\nHost: chaos\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return fmt.Errorf("idle connection's first answer: %w", err)
		}
		resp.Body.Close()
		return nil
	}
	type res struct {
		kind string
		life time.Duration
		cut  bool
		err  error
	}
	var mu sync.Mutex
	var out []res
	var wg sync.WaitGroup
	for _, k := range []struct {
		name string
		f    func(net.Conn, *bufio.Reader) error
	}{{"slow body", slow}, {"slow body", slow}, {"idle keep-alive", idle}, {"idle keep-alive", idle}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			life, cut, err := e.heldConn(ctx, s.SlowWait, k.f)
			mu.Lock()
			out = append(out, res{k.name, life, cut, err})
			mu.Unlock()
		}()
	}
	wg.Wait()
	var t Tally
	worst := map[string]time.Duration{}
	held := map[string]bool{}
	for _, o := range out {
		switch {
		case o.err != nil:
			t.Add(o.kind+" error", false, true)
			r.Notes = append(r.Notes, o.kind+": "+o.err.Error())
		case o.cut:
			t.Add(o.kind+" cut", true, false)
		default:
			t.Add(o.kind+" held", false, false)
			held[o.kind] = true
		}
		worst[o.kind] = max(worst[o.kind], o.life)
	}
	for _, k := range []string{"slow body", "idle keep-alive"} {
		v := "cut after " + ms(worst[k])
		if held[k] {
			v = fmt.Sprintf("still open after %v", s.SlowWait)
		}
		r.Figures = append(r.Figures, Figure{Name: k, Value: v, Target: fmt.Sprintf("cut within %v", s.SlowWait), Met: !held[k] && worst[k] > 0})
	}
	r.Tried, r.Handled, r.Lost = t.Tried, t.Handled, t.Lost
	r.Notes = append(r.Notes, t.CodesNote())
	return r
}

// Disconnect is case 6: s.Disconnect clients send a request at once and
// all close after 100 ms; every answer that came before must be a 200 or a
// 503, and the server must then answer health and a good request. A dead or
// wedged server makes the whole case unhandled.
func (e *Env) Disconnect(ctx context.Context, s Settings) Result {
	r := Result{Case: "client-disconnects"}
	reqs, err := goodImageRequests(e.Model)
	if err != nil {
		r.Err = err
		return r
	}
	cctx, cancel := context.WithCancel(ctx)
	var mu sync.Mutex
	var t Tally
	var wg sync.WaitGroup
	for i := range s.Disconnect {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := e.Send(cctx, reqs[i%len(reqs)])
			mu.Lock()
			defer mu.Unlock()
			switch {
			case a.Code == 200 || a.Code == 503:
				t.Add(a.Class(), true, false)
			case a.Code != 0:
				t.Add(a.Class(), false, false)
			case cctx.Err() != nil:
				t.Add("closed by the client", true, false)
			default:
				t.Add(a.Class(), false, true)
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	cancel()
	wg.Wait()
	time.Sleep(time.Second)
	pctx, pcancel := context.WithTimeout(ctx, 60*time.Second)
	defer pcancel()
	h := e.Get(pctx, "/v2/health/ready")
	a := e.Send(pctx, reqs[0])
	healthy := h.Code == 200 && a.Code == 200
	r.Tried, r.Handled, r.Lost = t.Tried, t.Handled, t.Lost
	if !healthy {
		r.Handled = 0
	}
	r.Figures = append(r.Figures, Figure{Name: "healthy after", Value: fmt.Sprintf("ready %s, a good request %s in %s", h.Class(), a.Class(), ms(a.Latency)), Target: "200, 200", Met: healthy})
	r.Notes = append(r.Notes, t.CodesNote())
	return r
}
