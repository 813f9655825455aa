package reasons

import (
	"slices"
	"testing"
)

type reason uint8

func TestName(t *testing.T) {
	names := []string{"a", "b"}
	for r, want := range map[reason]string{0: "a", 1: "b", 2: "unknown", 255: "unknown"} {
		if got := Name(names, r); got != want {
			t.Errorf("Name(%d) = %q, want %q", r, got, want)
		}
	}
}

func TestAll(t *testing.T) {
	if got := All[reason](3); !slices.Equal(got, []reason{0, 1, 2}) {
		t.Errorf("All(3) = %v", got)
	}
	if got := All[reason](0); len(got) != 0 {
		t.Errorf("All(0) = %v", got)
	}
}
