package policies

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ErrInvalid is matched (errors.Is) by every error Parse returns for a
// file that is not a valid mesh file.
var ErrInvalid = errors.New("policies: invalid mesh file")

// maxErrors bounds how many problems one Parse reports.
const maxErrors = 10

// FieldError is one problem in a mesh file, at a line and a field path
// such as "services.orders.routes[0].split".
type FieldError struct {
	File string // the name given to Parse
	Line int    // 1-based; 0 when unknown
	Path string // "" for the file as a whole
	Msg  string
}

func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString("policies: ")
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	if e.Path != "" {
		b.WriteString(": " + e.Path)
	}
	b.WriteString(": " + e.Msg)
	return b.String()
}

// Is reports whether target is ErrInvalid.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// Errors is several problems in one file, in the order of their lines. It
// prints one per line.
type Errors []*FieldError

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns each problem, so errors.Is and errors.As see them.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// ParseFile reads and parses the mesh file at path; errors name the file
// by its base name.
func ParseFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policies: %w", err)
	}
	return Parse(filepath.Base(path), data)
}

// Parse parses and validates a mesh file (YAML, or JSON as YAML's
// subset). name is the file's name in error messages. It reports every
// problem it finds, up to ten: a *FieldError for one, Errors for more,
// both matching ErrInvalid. Type errors (an unknown field, a list where a
// duration belongs) are reported first; only a file free of them is then
// checked for consistency (names, subsets, weights, accounts).
func Parse(name string, data []byte) (*File, error) {
	d := &decoder{name: name, lines: map[string]int{}}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, d.syntaxError(err)
	}
	if len(doc.Content) == 0 {
		return nil, &FieldError{File: name, Msg: "empty file: want at least \"version: 1\""}
	}
	f := &File{}
	d.decode(doc.Content[0], "", reflect.ValueOf(f).Elem())
	if len(d.errs) == 0 {
		(&validator{d: d, f: f}).file()
	}
	if err := d.err(); err != nil {
		return nil, err
	}
	return f, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (d *decoder) syntaxError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	return &FieldError{File: d.name, Line: line, Msg: msg}
}

// decoder turns a YAML node tree into Go values, refusing unknown fields
// and wrong types, and remembers the line of every field path for the
// validator's messages.
type decoder struct {
	name  string
	lines map[string]int
	errs  []*FieldError
}

// scalarDecoder is implemented by types with their own scalar syntax
// (Duration, Percent).
type scalarDecoder interface{ decodeScalar(*yaml.Node) error }

func (d *decoder) fail(line int, path, format string, args ...any) {
	e := &FieldError{File: d.name, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)}
	for _, old := range d.errs {
		if *old == *e {
			return
		}
	}
	d.errs = append(d.errs, e)
}

// failAt reports a problem at path, at the line recorded for it or for
// its nearest parent.
func (d *decoder) failAt(path, format string, args ...any) {
	d.fail(d.line(path), path, format, args...)
}

func (d *decoder) line(path string) int {
	for p := path; p != ""; {
		if l, ok := d.lines[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return d.lines[""]
}

func (d *decoder) err() error {
	if len(d.errs) == 0 {
		return nil
	}
	slices.SortStableFunc(d.errs, func(a, b *FieldError) int { return a.Line - b.Line })
	if len(d.errs) > maxErrors {
		d.errs = d.errs[:maxErrors]
	}
	if len(d.errs) == 1 {
		return d.errs[0]
	}
	return Errors(d.errs)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (d *decoder) decode(n *yaml.Node, path string, v reflect.Value) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if _, ok := d.lines[path]; !ok {
		d.lines[path] = n.Line
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // absent: the zero value
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		v = v.Elem()
	}
	if sd, ok := v.Addr().Interface().(scalarDecoder); ok {
		if err := sd.decodeScalar(n); err != nil {
			d.fail(n.Line, path, "%v", err)
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.decodeStruct(n, path, v)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.fail(n.Line, path, "want a mapping, got %s", describe(n))
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			if k.Kind != yaml.ScalarNode {
				d.fail(k.Line, path, "want a name as key, got %s", describe(k))
				continue
			}
			if m.MapIndex(reflect.ValueOf(k.Value)).IsValid() {
				d.fail(k.Line, p, "%q appears twice", k.Value)
				continue
			}
			d.lines[p] = k.Line
			e := reflect.New(v.Type().Elem()).Elem()
			d.decode(val, p, e)
			m.SetMapIndex(reflect.ValueOf(k.Value), e)
		}
		v.Set(m)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(n.Line, path, "want a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, path+"["+strconv.Itoa(i)+"]", s.Index(i))
		}
		v.Set(s)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.fail(n.Line, path, "want a string, got %s", describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Int:
		i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
		switch {
		case n.Tag != "!!int" || err != nil:
			d.fail(n.Line, path, "want a whole number, got %s", describe(n))
		case intRange(i) != "":
			d.fail(n.Line, path, "%s", intRange(i))
		default:
			v.SetInt(i)
		}
	case reflect.Float64:
		f, err := strconv.ParseFloat(n.Value, 64)
		switch {
		case (n.Tag != "!!int" && n.Tag != "!!float") || err != nil || math.IsNaN(f) || math.IsInf(f, 0):
			d.fail(n.Line, path, "want a number, got %s", describe(n))
		case f < 0:
			d.fail(n.Line, path, "%s: must not be negative", n.Value)
		default:
			v.SetFloat(f)
		}
	case reflect.Bool:
		b, err := strconv.ParseBool(n.Value)
		if n.Tag != "!!bool" || err != nil {
			d.fail(n.Line, path, "want true or false, got %s", describe(n))
			return
		}
		v.SetBool(b)
	default:
		panic("policies: cannot decode into " + v.Type().String())
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.fail(n.Line, path, "want a mapping, got %s", describe(n))
		return
	}
	t := v.Type()
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		p := join(path, k.Value)
		f, ok := fieldByTag(t, k.Value)
		if !ok {
			d.fail(k.Line, p, "unknown field %q (known here: %s)", k.Value, strings.Join(fieldNames(t), ", "))
			continue
		}
		if seen[k.Value] {
			d.fail(k.Line, p, "%q appears twice", k.Value)
			continue
		}
		seen[k.Value] = true
		d.lines[p] = k.Line
		d.decode(val, p, v.FieldByIndex(f.Index))
	}
}

func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		if f := t.Field(i); f.IsExported() && yamlName(f) == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func fieldNames(t reflect.Type) []string {
	var names []string
	for i := range t.NumField() {
		if f := t.Field(i); f.IsExported() {
			names = append(names, yamlName(f))
		}
	}
	return names
}
