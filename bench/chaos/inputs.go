package chaos

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// BadIDs is case 2: s.BadBad requests with bad token ids (1e9, -5, length
// 2000) shuffled among s.BadGood good ones on the raw model, sent by 32
// clients so that they share batches. Every good request must get a 200
// whose LOGITS match the same request sent alone; every bad one a 400.
func (e *Env) BadIDs(ctx context.Context, s Settings) Result {
	r := Result{Case: "bad-token-ids"}
	chw, err := e.rawShape(ctx)
	if err != nil {
		r.Err = err
		return r
	}
	const variants = 8
	good := make([]Encoded, variants)
	ref := make([][]float32, variants)
	for v := range variants {
		good[v], err = Encode(RawRequest(e.RawModel, chw, uint64(v), TokenIDs(uint64(v), 16)), true)
		if err != nil {
			r.Err = err
			return r
		}
		a := e.Send(ctx, good[v])
		if a.Code != 200 {
			r.Err = fmt.Errorf("reference request %d alone: %s %s", v, a.Class(), bytes.TrimSpace(a.Body))
			return r
		}
		if ref[v], err = OutputFloats(&a, "LOGITS"); err != nil {
			r.Err = fmt.Errorf("reference request %d: %w", v, err)
			return r
		}
	}
	type job struct {
		enc  Encoded
		good int    // variant, or -1 for a bad request
		kind string // the bad kind
	}
	var jobs []job
	for i := range s.BadGood {
		jobs = append(jobs, job{enc: good[i%variants], good: i % variants})
	}
	for i := range s.BadBad {
		ids, kind := BadIDs(i, uint64(100+i))
		enc, err := Encode(RawRequest(e.RawModel, chw, uint64(i%variants), ids), true)
		if err != nil {
			r.Err = err
			return r
		}
		jobs = append(jobs, job{enc: enc, good: -1, kind: kind})
	}
	rng := rand.New(rand.NewPCG(15, 2))
	rng.Shuffle(len(jobs), func(i, j int) { jobs[i], jobs[j] = jobs[j], jobs[i] })
	var mu sync.Mutex
	var gt, bt Tally
	wrong := 0
	next := make(chan job)
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				a := e.Send(ctx, j.enc)
				mu.Lock()
				if j.good >= 0 {
					switch {
					case a.Code == 200:
						out, err := OutputFloats(&a, "LOGITS")
						right := err == nil && Close(out, ref[j.good], 1e-3)
						if !right {
							wrong++
						}
						gt.Add("200", right, !right)
					default:
						gt.Add(a.Class(), false, a.Code == 0)
					}
				} else {
					bt.Add(j.kind+" "+a.Class(), a.Code == 400, a.Code == 0)
				}
				mu.Unlock()
			}
		}()
	}
	for _, j := range jobs {
		if ctx.Err() != nil {
			break
		}
		next <- j
	}
	close(next)
	wg.Wait()
	var t Tally
	t.Merge(gt)
	t.Merge(bt)
	r.Tried, r.Handled, r.Lost = t.Tried, t.Handled, t.Lost
	r.Figures = append(r.Figures,
		Figure{Name: "good with 200 and the lone result", Value: fmt.Sprintf("%d/%d (%d wrong results)", gt.Handled, gt.Tried, wrong), Target: "all", Met: gt.Tried > 0 && gt.Handled == gt.Tried},
		Figure{Name: "bad with 400", Value: fmt.Sprintf("%d/%d", bt.Handled, bt.Tried), Target: "all", Met: bt.Tried > 0 && bt.Handled == bt.Tried},
	)
	r.Notes = append(r.Notes, "good: "+gt.CodesNote(), "bad: "+bt.CodesNote())
	return r
}

// refused reports whether code is a refusal of the input (400 or 413).
func refused(code int) bool { return code == 400 || code == 413 }

// BigJPEG is case 3: a JPEG whose header says 8000x8000 (under 1 MB) sent
// alone s.JPEGTries times (refusal latency), then as 4 concurrent requests
// of 16 images each while RSS is sampled. Handled: a 400 or 413.
func (e *Env) BigJPEG(ctx context.Context, s Settings) Result {
	r := Result{Case: "8000x8000-jpeg"}
	img, err := UniformJPEG(8000, 8000)
	if err != nil {
		r.Err = err
		return r
	}
	one, err := Encode(ImageRequest(e.Model, img, "there are two birds.", 1), true)
	if err != nil {
		r.Err = err
		return r
	}
	var t Tally
	var lats []time.Duration
	for range s.JPEGTries {
		a := e.Send(ctx, one)
		t.Add(a.Class(), refused(a.Code), a.Code == 0)
		if a.Code != 0 {
			lats = append(lats, a.Latency)
		}
	}
	e.logf("8000x8000-jpeg: 4 requests of 16 images (%d KB each image)", len(img)>>10)
	Settle(ctx, e.PID, time.Minute)
	base, _ := ReadRSS(e.PID)
	sixteen, err := Encode(ImageRequest(e.Model, img, "there are two birds.", 16), true)
	if err != nil {
		r.Err = err
		return r
	}
	burst := StartSampler(e.PID, 20*time.Millisecond)
	var mu sync.Mutex
	var wg sync.WaitGroup
	var burstLat []time.Duration
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := e.Send(ctx, sixteen)
			mu.Lock()
			defer mu.Unlock()
			t.Add("x16 "+a.Class(), refused(a.Code), a.Code == 0)
			burstLat = append(burstLat, a.Latency)
		}()
	}
	wg.Wait()
	_, peak, _ := burst.Stop()
	r.Tried, r.Handled, r.Lost = t.Tried, t.Handled, t.Lost
	r.Figures = append(r.Figures,
		Figure{Name: "file size", Value: fmt.Sprintf("%d KB for 8000x8000", len(img)>>10)},
		below("lone refusal p99", P(lats, 99), 10*time.Millisecond),
		Figure{Name: "4x16 slowest answer", Value: ms(P(burstLat, 100))},
		Figure{Name: "RSS growth during 4x16", Value: fmt.Sprintf("%s MB (%s → peak %s MB)", MB(max(peak-base, 1)), MB(base), MB(peak)), Target: "< 500 MB", Met: peak-base < 500e6},
	)
	r.Notes = append(r.Notes, t.CodesNote())
	return r
}

// badInput is one malformed request of case 7 and the code it must get.
type badInput struct {
	name string
	want int
	path string
	body []byte
	hdr  map[string]string
}

func (e *Env) badInputs(s Settings) ([]badInput, error) {
	img, err := PhotoJPEG(64, 64, 0)
	if err != nil {
		return nil, err
	}
	good, err := Encode(ImageRequest(e.Model, img, "there are two birds.", 1), false)
	if err != nil {
		return nil, err
	}
	infer := "/v2/models/" + e.Model + "/infer"
	shm := `{"inputs":[{"name":"IMAGE","shape":[1,1],"datatype":"BYTES","parameters":{"shared_memory_region":"r0","shared_memory_byte_size":64}},` +
		`{"name":"HYPOTHESIS","shape":[1,1],"datatype":"BYTES","data":["there are two birds."]}]}`
	// The good body with its HYPOTHESIS data turned into a bare string.
	bare := strings.Replace(string(good.Body), `"data":["there are two birds."]`, `"data":"there are two birds."`, 1)
	if bare == string(good.Body) {
		return nil, fmt.Errorf("bare-string body: the HYPOTHESIS data was not found in %.200s", good.Body)
	}
	big := bytes.Repeat([]byte(" "), int(s.MaxBody)+1<<20)
	big[0] = '{'
	return []badInput{
		{name: "Content-Encoding: br", want: 415, path: infer, body: good.Body, hdr: map[string]string{"Content-Encoding": "br"}},
		{name: "shared_memory_region", want: 400, path: infer, body: []byte(shm)},
		{name: "oversized body", want: 413, path: infer, body: big},
		{name: "version abc", want: 400, path: "/v2/models/" + e.Model + "/versions/abc/infer", body: good.Body},
		{name: "bare-string data", want: 400, path: infer, body: []byte(bare)},
	}, nil
}

// BadInputs is case 7: each malformed request s.BadTries times (the
// oversized body twice); handled when the answer has the right code.
func (e *Env) BadInputs(ctx context.Context, s Settings) Result {
	r := Result{Case: "bad-inputs"}
	ins, err := e.badInputs(s)
	if err != nil {
		r.Err = err
		return r
	}
	var t Tally
	for _, in := range ins {
		n := s.BadTries
		if len(in.body) > 1<<20 {
			n = min(n, 2)
		}
		var k Tally
		for range n {
			a := e.Post(ctx, in.path, in.body, in.hdr)
			k.Add(a.Class(), a.Code == in.want, a.Code == 0)
		}
		t.Merge(k)
		r.Figures = append(r.Figures, Figure{Name: in.name, Value: k.CodesNote(), Target: fmt.Sprintf("%d", in.want), Met: k.Handled == k.Tried})
	}
	r.Tried, r.Handled, r.Lost = t.Tried, t.Handled, t.Lost
	return r
}
