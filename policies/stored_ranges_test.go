package policies

import (
	"bytes"
	"testing"
)

// ParseStored must refuse what Parse refuses. Parse's decoder refuses
// negative whole numbers and ones over MaxInt32; the validator does not
// check them again, and decodeCanonical's encoding/json does not either.
func TestParseStoredRefusesWhatParseRefusesInRange(t *testing.T) {
	good := `version: 1
defaults:
  bulkhead: {max_concurrent: 7}
services:
  a:
    subsets: [v1, v2, v3]
    inbound:
      max_concurrent: 5
      rate_limit: {per_caller: 3}
    policy:
      split: {v1: 40, v2: 30, v3: 30}
`
	f, err := Parse("x.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	js, err := f.JSON()
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string][2]string{
		"split weight negative":     {`"v1": 40`, `"v1": 100`},
		"per_caller negative":       {`"per_caller": 3`, `"per_caller": -3`},
		"max_concurrent > MaxInt32": {`"max_concurrent": 5`, `"max_concurrent": 9999999999`},
		"bulkhead negative":         {`"max_concurrent": 7`, `"max_concurrent": -7`},
	} {
		t.Run(name, func(t *testing.T) {
			doc := bytes.Replace(js, []byte(r[0]), []byte(r[1]), 1)
			if name == "split weight negative" {
				doc = bytes.Replace(doc, []byte(`"v3": 30`), []byte(`"v3": -30`), 1)
			}
			if bytes.Equal(doc, js) {
				t.Fatalf("no replacement in\n%s", js)
			}
			_, perr := Parse("x.json", doc)
			got, serr := ParseStored("x.json", doc)
			if perr != nil && serr == nil {
				t.Errorf("Parse refuses (%v); ParseStored accepts it: inbound %+v, split %v",
					perr, *got.Services["a"].Inbound, got.Services["a"].Policy.Split)
			}
		})
	}
}
