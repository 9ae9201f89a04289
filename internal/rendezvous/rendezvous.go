// Package rendezvous provides the hash mixing behind rendezvous (highest
// random weight) hashing, which placement uses to spread files over a
// site's appliances and steering uses to spread clients over equal ones.
package rendezvous

// Mix is the splitmix64 finalizer: a bijection that spreads every input
// bit over the output, so the scores of (key ^ node) for one key are
// independent per node, as rendezvous hashing needs.
func Mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
