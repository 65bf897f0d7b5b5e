package batcher_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ofaserve/ofaserve/batcher"
)

// A batcher runs whatever function executes a batch: here one that doubles
// every value of the batch, as a model's forward computes a whole batch in
// one call. Four requests submitted at once form one batch of the preferred
// size (by default max_batch_size); each caller gets its own result.
func ExampleNew() {
	double := func(ctx context.Context, instance int, batch []int) ([]int, batcher.Timing, error) {
		out := make([]int, len(batch))
		for i, v := range batch {
			out[i] = 2 * v
		}
		return out, batcher.Timing{}, nil
	}
	b, err := batcher.New(batcher.Config{MaxBatchSize: 4, MaxQueueDelay: 5 * time.Second, Instances: 1}, double)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Stop(context.Background())

	results := make([]int, 4)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			r, err := b.Submit(context.Background(), batcher.Item[int]{Value: i + 1, Size: 1})
			if err != nil {
				fmt.Println(err)
			}
			results[i] = r
		})
	}
	wg.Wait()
	st := b.Stats()
	fmt.Println(results)
	fmt.Printf("%d inferences in %d execution\n", st.InferenceCount, st.ExecutionCount)
	// Output:
	// [2 4 6 8]
	// 4 inferences in 1 execution
}
