package live

import (
	"encoding/json"
	"net/http"

	"github.com/natsmesh/natsmesh/policies"
)

// ConfigResponse is what [Handler] serves.
type ConfigResponse struct {
	// Revision is the applied file's revision (the bucket's, or the count
	// of good loads of a local file); 0 while no file is held.
	Revision uint64 `json:"revision"`
	// Digest is the SHA-256 of the applied version as stored, in hex
	// (Source.Digest): agents that show the same apply the same file.
	Digest string `json:"digest,omitempty"`
	// Builtin is true while no file applies: the built-in policy on an
	// open broker, no call served by an agent that authenticates.
	Builtin bool `json:"builtin,omitempty"`
	// File is the applied file, canonical (with ?service=, absent).
	File json.RawMessage `json:"file,omitempty"`
	// Service is the view of one service (?service=NAME): its part of the
	// file and its merged policies.
	Service *policies.ServiceView `json:"service,omitempty"`
}

// Handler serves, as JSON, the mesh file src applies now: its revision and
// the canonical file, or with ?service=NAME that service's view (404 if
// the file has no such service). A nil src serves the built-in policy
// (revision 0). It is what an agent's or gateway's admin endpoint serves
// on GET /config.
func Handler(src *Source) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var f *policies.File
		var resp ConfigResponse
		if src != nil {
			f, resp.Revision = src.Current()
			resp.Digest = src.Digest()
		}
		resp.Builtin = f == nil
		if name := r.URL.Query().Get("service"); name != "" {
			var ok bool
			if f != nil {
				resp.Service, ok = f.View(name)
			}
			if !ok {
				http.Error(w, "live: the applied mesh file has no service "+name, http.StatusNotFound)
				return
			}
		} else if f != nil {
			data, err := f.JSON()
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			resp.File = data
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(resp) //nolint:errcheck // the client went away
	})
}
