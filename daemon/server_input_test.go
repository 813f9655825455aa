package daemon

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/daemon/api"
)

// The API reads exactly one JSON object of at most 1 MiB: trailing data
// and oversized bodies get a 400 that says which, and nothing is created.
func TestAPIRequestBodies(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req api.NetworkCreate
		if decode(w, r, &req) {
			reply(w, req, nil)
		}
	})
	for _, tc := range []struct {
		name, body, want string
		status           int
	}{
		{"one object", `{"name":"n"}`, "", 200},
		{"trailing whitespace", "{\"name\":\"n\"}\n\t ", "", 200},
		{"trailing garbage", `{"name":"n"} garbage`, "data after the JSON object", 400},
		{"two objects", `{"name":"n"}{"name":"m"}`, "data after the JSON object", 400},
		{"over 1 MiB", `{"name":"` + strings.Repeat("n", 2<<20) + `"}`, "over 1048576 bytes", 400},
		{"over 1 MiB after the object", `{"name":"n"}` + strings.Repeat(" ", 2<<20) + "x", "over 1048576 bytes", 400},
		{"unknown field", `{"nmae":"n"}`, "unknown field", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("POST", "/v1/networks", strings.NewReader(tc.body)))
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if tc.want == "" {
				return
			}
			var e api.Error
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || !strings.Contains(e.Message, tc.want) {
				t.Fatalf("body %s (%v), want a message saying %q", w.Body, err, tc.want)
			}
		})
	}
}
