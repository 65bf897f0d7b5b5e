package bpe

// mergeLong computes the same merges as mergeShort in O(n log n) for long
// pre-tokens (a run of thousands of letters or spaces must not cost n²).
//
// Symbols form a linked list; a min-heap holds every adjacent pair that has
// a merge, ordered by (rank, position). Popping the heap therefore joins
// the lowest-ranked pair first, and equal pairs from left to right, just as
// GPT-2's pass over the word does. The two methods agree whenever every
// merge's parts are made by lower-ranked merges (a newly joined symbol then
// only forms pairs of higher rank than the pair that made it); the loaders
// check this and refuse merges files where it fails.
func (t *Tokenizer) mergeLong(dst []int32, word string) []int32 {
	n := len(word)
	sym := make([]int32, n) // -1 once the node was joined into its left neighbour
	next := make([]int32, n)
	prev := make([]int32, n)
	for i := 0; i < n; i++ {
		sym[i] = int32(word[i])
		next[i] = int32(i + 1)
		prev[i] = int32(i - 1)
	}
	next[n-1] = -1

	h := pairHeap(make([]heapPair, 0, n))
	for i := 0; i+1 < n; i++ {
		if m, ok := t.merges[pairKey(sym[i], sym[i+1])]; ok {
			h = append(h, heapPair{rank: m.rank, pos: int32(i), left: sym[i], right: sym[i+1], result: m.result})
		}
	}
	h.init()
	for len(h) > 0 {
		e := h.pop()
		p := e.pos
		q := next[p]
		if sym[p] != e.left || q < 0 || sym[q] != e.right {
			continue // stale: a neighbour was joined since this pair was pushed
		}
		sym[p] = e.result
		sym[q] = -1
		nq := next[q]
		next[p] = nq
		if nq >= 0 {
			prev[nq] = p
		}
		if l := prev[p]; l >= 0 {
			if m, ok := t.merges[pairKey(sym[l], sym[p])]; ok {
				h.push(heapPair{rank: m.rank, pos: l, left: sym[l], right: sym[p], result: m.result})
			}
		}
		if nq >= 0 {
			if m, ok := t.merges[pairKey(sym[p], sym[nq])]; ok {
				h.push(heapPair{rank: m.rank, pos: p, left: sym[p], right: sym[nq], result: m.result})
			}
		}
	}
	for i := int32(0); i >= 0; i = next[i] {
		dst = append(dst, t.symbolID[sym[i]])
	}
	return dst
}

type heapPair struct {
	rank, pos           int32
	left, right, result int32
}

func (a heapPair) less(b heapPair) bool {
	return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos)
}

// pairHeap is a binary min-heap of heapPair.
type pairHeap []heapPair

func (h pairHeap) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h *pairHeap) push(e heapPair) {
	*h = append(*h, e)
	s := *h
	i := len(s) - 1
	for i > 0 {
		parent := (i - 1) / 2
		if !s[i].less(s[parent]) {
			break
		}
		s[i], s[parent] = s[parent], s[i]
		i = parent
	}
}

func (h *pairHeap) pop() heapPair {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	*h = s[:last]
	h.down(0)
	return top
}

func (h pairHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		small := l
		if r := l + 1; r < len(h) && h[r].less(h[l]) {
			small = r
		}
		if !h[small].less(h[i]) {
			return
		}
		h[i], h[small] = h[small], h[i]
		i = small
	}
}
