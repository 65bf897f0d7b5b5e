package preprocess

import (
	"math"
	"sync"
	"testing"
)

// Prepare shares pooled buffers between calls: concurrent calls on different
// inputs and sizes must give what sequential calls give.
func TestPrepareConcurrent(t *testing.T) {
	enc := encoded(t)
	inputs := [][]byte{enc["jpeg"], enc["png"], enc["gif"], enc["bmp"]}
	sizes := [][2]int{{40, 30}, {7, 50}, {23, 17}, {5, 5}}
	want := make([][]float32, len(inputs))
	for i, in := range inputs {
		out, err := Prepare(in, Options{Width: sizes[i][0], Height: sizes[i][1], Norm: ImageNetNormalize}, nil)
		if err != nil {
			t.Fatal(err)
		}
		want[i] = out
	}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			var dst []float32
			for r := 0; r < 20; r++ {
				i := (g + r) % len(inputs)
				out, err := Prepare(inputs[i], Options{Width: sizes[i][0], Height: sizes[i][1], Norm: ImageNetNormalize}, dst)
				if err != nil {
					errs <- err.Error()
					return
				}
				for j := range out {
					if math.Float32bits(out[j]) != math.Float32bits(want[i][j]) {
						errs <- "concurrent result differs"
						return
					}
				}
				dst = out
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
