package policies

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written as a Go duration string ("250ms",
// "5s"); the plain number 0 is also accepted. It renders as
// time.Duration.String does.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON renders d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string, as rendered by MarshalJSON; see
// ParseStored.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s, err := jsonString(b)
	if err != nil {
		return err
	}
	return d.decodeScalar(&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s})
}

func (d *Duration) decodeScalar(n *yaml.Node) error {
	if n.Tag == "!!int" || n.Tag == "!!float" {
		if f, err := strconv.ParseFloat(n.Value, 64); err == nil && f == 0 {
			*d = 0
			return nil
		}
		return fmt.Errorf("%s is not a duration (write it with a unit: \"%sms\" or \"%ss\")", n.Value, n.Value, n.Value)
	}
	if n.Tag != "!!str" {
		return fmt.Errorf("%s is not a duration such as \"250ms\" or \"5s\"", describe(n))
	}
	v, err := time.ParseDuration(strings.TrimSpace(n.Value))
	if err != nil {
		return fmt.Errorf("%q is not a duration such as \"250ms\" or \"5s\"", n.Value)
	}
	if v < 0 {
		return fmt.Errorf("%q: a duration must not be negative", n.Value)
	}
	*d = Duration(v)
	return nil
}

// Percent is a share in percent, 0 to 100, written "20%" or as the plain
// number 20. It renders as "20%".
type Percent float64

// Fraction returns p as a number from 0 to 1.
func (p Percent) Fraction() float64 { return float64(p) / 100 }

func (p Percent) String() string { return strconv.FormatFloat(float64(p), 'f', -1, 64) + "%" }

// MarshalJSON renders p as a "20%" string.
func (p Percent) MarshalJSON() ([]byte, error) { return json.Marshal(p.String()) }

// UnmarshalJSON reads a "20%" string, as rendered by MarshalJSON; see
// ParseStored.
func (p *Percent) UnmarshalJSON(b []byte) error {
	s, err := jsonString(b)
	if err != nil {
		return err
	}
	return p.decodeScalar(&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s})
}

func (p *Percent) decodeScalar(n *yaml.Node) error {
	s := strings.TrimSpace(n.Value)
	switch n.Tag {
	case "!!int", "!!float":
	case "!!str":
		s = strings.TrimSpace(strings.TrimSuffix(s, "%"))
	default:
		return fmt.Errorf("%s is not a percentage such as \"20%%\"", describe(n))
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > 100 {
		return fmt.Errorf("%q is not a percentage in 0-100%%", n.Value)
	}
	*p = Percent(f)
	return nil
}

// jsonString decodes a JSON string; one without escapes, as durations and
// percentages render, without a second pass of encoding/json.
func jsonString(b []byte) (string, error) {
	if n := len(b); n >= 2 && b[0] == '"' && b[n-1] == '"' && bytes.IndexAny(b[1:n-1], "\\\"") < 0 {
		return string(b[1 : n-1]), nil
	}
	var s string
	err := json.Unmarshal(b, &s)
	return s, err
}

// describe names a YAML node's kind for an error message: the value itself
// for a scalar, "a list" or "a mapping" otherwise.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "null"
		}
		if n.Tag == "!!str" {
			return strconv.Quote(n.Value)
		}
		return n.Value
	}
	return "this value"
}
