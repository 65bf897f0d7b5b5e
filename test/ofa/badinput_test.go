package ofa_test

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ofaserve/ofaserve/internal/testenv"
)

// pngHeader is a PNG whose IHDR claims w×h pixels, with no pixel data.
func pngHeader(w, h uint32) []byte {
	body := []byte("IHDR")
	body = binary.BigEndian.AppendUint32(body, w)
	body = binary.BigEndian.AppendUint32(body, h)
	body = append(body, 8, 2, 0, 0, 0)
	out := append([]byte("\x89PNG\r\n\x1a\n"), 0, 0, 0, 13)
	out = append(out, body...)
	return binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(body))
}

// TestBadInputBesideGoodRequests: bad requests sent in the same batch
// window as good ones each get a 400 naming the problem; the good ones get
// their right answers, and the server stays up.
func TestBadInputBesideGoodRequests(t *testing.T) {
	jpg := env.images["grace_hopper.jpg"]
	var png []byte
	for name, b := range env.images {
		if strings.HasSuffix(name, "astronaut.png") {
			png = b
		}
	}
	corrupt := append([]byte(nil), png...)
	for i := len(corrupt) / 2; i < len(corrupt)/2+64; i++ {
		corrupt[i] ^= 0xa5
	}
	b64 := base64.StdEncoding.EncodeToString
	jsonReq := func(image, hyp string) []byte {
		b, _ := json.Marshal(map[string]any{"inputs": []input{
			{Name: "IMAGE", Shape: []int64{1}, Datatype: "BYTES", Data: []string{image}},
			{Name: "HYPOTHESIS", Shape: []int64{1}, Datatype: "BYTES", Data: []string{hyp}},
		}})
		return b
	}
	type badReq struct {
		name   string
		body   []byte
		header map[string]string
		want   string
	}
	bads := []badReq{
		{"empty", jsonReq("", "a dog"), nil, "IMAGE[0]: image: empty input"},
		{"truncated", jsonReq(b64(jpg[:len(jpg)*2/3]), "a dog"), nil, "IMAGE[0]: image: decoding JPEG"},
		{"corrupt", jsonReq(b64(corrupt), "a dog"), nil, "IMAGE[0]: image: decoding PNG"},
		{"unsupported", jsonReq(b64([]byte("%PDF-1.4\n%âãÏÓ\n1 0 obj")), "a dog"), nil, "IMAGE[0]: unsupported image format"},
		{"50000x50000 header", jsonReq(b64(pngHeader(50000, 50000)), "a dog"), nil, "IMAGE[0]: image too large: 50000x50000"},
		{"1 MB hypothesis", jsonReq(b64(jpg), strings.Repeat("a", 1<<20)), nil, "HYPOTHESIS[0]: prompt: hypothesis: text is too long"},
	}
	body, hdr := binaryBody([]string{"IMAGE", "HYPOTHESIS"}, [][]byte{jpg, []byte("a d\xffog \xc3")})
	bads = append(bads, badReq{"non-UTF-8 hypothesis", body, hdr, "HYPOTHESIS[0]: prompt: hypothesis: text is not valid UTF-8"})
	body, hdr = binaryBody([]string{"IMAGE", "HYPOTHESIS", "PREMISE"}, [][]byte{jpg, []byte("a dog"), []byte("\xfe\xff")})
	bads = append(bads, badReq{"non-UTF-8 premise", body, hdr, "PREMISE[0]: prompt: premise: text is not valid UTF-8"})

	goods := env.cases[:4]
	before := stats(t)
	var wg sync.WaitGroup
	for round := range 2 { // twice, so bad requests also land while a batch is forming
		for _, c := range goods {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sc, _, _ := infer(t, inferBody([]refCase{c}), nil)
				if len(sc) != 1 || !near(sc[0], c.Probabilities, tol) {
					t.Errorf("round %d, good request beside bad ones: SCORES %v, reference %v", round, sc, c.Probabilities)
				}
			}()
		}
		for _, b := range bads {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctype := "application/json"
				if b.header != nil {
					ctype = "application/octet-stream"
				}
				code, resp := post(t, "/v2/models/ofa_entailment/infer", ctype, b.body, b.header)
				var e struct{ Error string }
				if code != http.StatusBadRequest || json.Unmarshal(resp, &e) != nil || !strings.Contains(e.Error, b.want) {
					t.Errorf("%s: HTTP %d %.300s; want 400 with an error containing %q", b.name, code, resp, b.want)
				}
			}()
		}
		time.Sleep(queueDelay / 3)
	}
	wg.Wait()
	after := stats(t)
	if got := after.inferences - before.inferences; got != uint64(2*len(goods)) {
		t.Errorf("inference_count grew by %d, want %d (bad requests must never be executed)", got, 2*len(goods))
	}
	if err := testenv.WaitReady(env.base+"/v2/health/ready", 5*time.Second, nil); err != nil {
		t.Error(err)
	}
}
