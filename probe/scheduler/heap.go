package scheduler

// queue is a min-heap of entry indices ordered by due time (container/heap). The entry
// keeps its own position (heapIdx) so that removal and re-prioritisation are O(log n).
type queue struct {
	items []uint32
	ents  *[]entry // the scheduler's entry table (it may be reallocated, hence a pointer)
}

func (q *queue) Len() int { return len(q.items) }

func (q *queue) Less(i, j int) bool {
	es := *q.ents
	a, b := &es[q.items[i]], &es[q.items[j]]
	if a.due != b.due {
		return a.due < b.due
	}
	return q.items[i] < q.items[j] // deterministic order for equal times
}

func (q *queue) Swap(i, j int) {
	q.items[i], q.items[j] = q.items[j], q.items[i]
	es := *q.ents
	es[q.items[i]].heapIdx = int32(i)
	es[q.items[j]].heapIdx = int32(j)
}

func (q *queue) Push(x any) {
	idx := x.(uint32)
	(*q.ents)[idx].heapIdx = int32(len(q.items))
	q.items = append(q.items, idx)
}

func (q *queue) Pop() any {
	n := len(q.items) - 1
	idx := q.items[n]
	q.items = q.items[:n]
	(*q.ents)[idx].heapIdx = -1
	return idx
}

// top returns the earliest entry without removing it.
func (q *queue) top() (uint32, bool) {
	if len(q.items) == 0 {
		return 0, false
	}
	return q.items[0], true
}

// countDue counts the entries due at or before now, visiting only those (and their
// direct children): a min-heap's subtree below a not-due node holds no due node.
func (q *queue) countDue(now int64) int {
	es := *q.ents
	n := 0
	stack := []int{0}
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if i >= len(q.items) || es[q.items[i]].due > now {
			continue
		}
		n++
		stack = append(stack, 2*i+1, 2*i+2)
	}
	return n
}
