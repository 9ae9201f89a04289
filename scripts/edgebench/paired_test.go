package main

import (
	"strconv"
	"strings"
	"testing"
)

// TestPaired: per case, in input order, the median ratio and the sign
// test's 95% interval (for 10 pairs, the 2nd and 9th smallest ratios);
// too few pairs print no interval; a malformed or non-positive pair is
// refused naming its line.
func TestPaired(t *testing.T) {
	var in strings.Builder
	// Ratios 0.95, 0.96, …, 1.04 for case x (in scrambled order), two
	// pairs for case y.
	for _, i := range []int{3, 9, 0, 5, 1, 7, 2, 8, 4, 6} {
		in.WriteString("x " + strconv.Itoa(95+i) + " 100\n")
	}
	in.WriteString("y 11 10\ny 12 10\n")
	var out strings.Builder
	if err := paired([]string{"-name", "sampling cost"}, strings.NewReader(in.String()), &out); err != nil {
		t.Fatal(err)
	}
	want := "x sampling cost: -0.5% [-4.0%, +3.0%] (median of 10 pair ratios, 95% sign-test interval)\n" +
		"y sampling cost: +15.0% (median of 2 pair ratios; too few pairs for a 95% interval, need 6)\n"
	if out.String() != want {
		t.Errorf("got\n%swant\n%s", out.String(), want)
	}
	for _, bad := range []string{"x 1 2\nx 1\n", "x 1 0\n", "x 1 nan\n", "x a 1\n"} {
		err := paired(nil, strings.NewReader(bad), &out)
		if err == nil || !strings.Contains(err.Error(), "line ") {
			t.Errorf("input %q: error %v, want one naming the line", bad, err)
		}
	}
}
