package agent

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/logagent/logagent"
)

// ConfigError is one problem in a configuration file, at a line and key.
type ConfigError struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Field != "" {
		b.WriteString(": " + e.Field)
	}
	b.WriteString(": " + e.Msg)
	return b.String()
}

// decoder decodes yaml nodes into structs strictly: unknown keys, wrong
// types and unparsable values are errors that name the line and the key
// path. It remembers the line of every key so that validation errors,
// found later, can name their line too.
type decoder struct {
	file  string
	lines map[string]int // key path -> line
	errs  []error
}

var (
	durationType = reflect.TypeOf(time.Duration(0))
	sizeType     = reflect.TypeOf(logagent.Size(0))
	unmarshaler  = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
)

// defaulter is implemented by list elements whose defaults must be set
// before their keys are decoded.
type defaulter interface{ setDefaults() }

// customDecoder is implemented by structs that decode their own node.
type customDecoder interface {
	decodeNode(d *decoder, n *yaml.Node, path string)
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.errs = append(d.errs, &ConfigError{File: d.file, Line: line, Field: path, Msg: fmt.Sprintf(format, args...)})
}

// line returns the line of path, or of the closest enclosing key.
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
	return 0
}

// fieldError turns a validation error into ConfigErrors with lines.
func (d *decoder) fieldError(err error) {
	if err == nil {
		return
	}
	var list []error
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		list = u.Unwrap()
	} else {
		list = []error{err}
	}
	for _, e := range list {
		var fe *logagent.FieldError
		if errors.As(e, &fe) {
			d.errs = append(d.errs, &ConfigError{File: d.file, Line: d.line(fe.Field), Field: fe.Field, Msg: fe.Msg})
		} else {
			d.errs = append(d.errs, &ConfigError{File: d.file, Msg: e.Error()})
		}
	}
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// yamlFields maps the yaml keys of struct type t to field index paths
// (reflect.Value.FieldByIndex). The keys of an embedded struct tagged
// `yaml:",inline"` are t's own, as yaml.v3 has them.
func yamlFields(t reflect.Type) (map[string][]int, []string) {
	m := map[string][]int{}
	var names []string
	var walk func(t reflect.Type, index []int)
	walk = func(t reflect.Type, index []int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			idx := append(slices.Clone(index), i)
			if opts == "inline" && f.Anonymous && f.Type.Kind() == reflect.Struct {
				walk(f.Type, idx)
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			m[name] = idx
			names = append(names, name)
		}
	}
	walk(t, nil)
	sort.Strings(names)
	return m, names
}

// decode decodes n into v (addressable), reporting problems under path.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if v.Type() == sizeType {
		// Before Size's own UnmarshalYAML, for this decoder's message,
		// and before the null check: an empty size is an error, not the
		// default.
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, path, "expected a size such as 64KiB, got a %s", kindName(n.Kind))
			return
		}
		s, err := logagent.ParseSize(n.Value)
		if err != nil {
			d.errorf(n, path, "%v", err)
			return
		}
		v.SetInt(int64(s))
		return
	}
	if v.CanAddr() {
		if cd, ok := v.Addr().Interface().(customDecoder); ok {
			cd.decodeNode(d, n, path)
			return
		}
		if v.Addr().Type().Implements(unmarshaler) {
			if err := v.Addr().Interface().(yaml.Unmarshaler).UnmarshalYAML(n); err != nil {
				d.errorf(n, path, "%v", err)
			}
			return
		}
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" && v.Kind() != reflect.String {
		return // "key:" with no value keeps the default
	}
	switch {
	case v.Type() == durationType:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, path, "expected a duration such as 10s, got a %s", kindName(n.Kind))
			return
		}
		if n.Value == "0" {
			v.SetInt(0)
			return
		}
		dur, err := time.ParseDuration(n.Value)
		if err != nil {
			d.errorf(n, path, "%q is not a duration (use a unit: 500ms, 10s, 5m, 1h)", n.Value)
			return
		}
		v.SetInt(int64(dur))
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
			if df, ok := v.Interface().(defaulter); ok {
				df.setDefaults()
			}
		}
		d.decode(n, v.Elem(), path)
	case reflect.Struct:
		d.decodeStruct(n, v, path, nil)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, path, "expected a list, got a %s", kindName(n.Kind))
			return
		}
		s := reflect.MakeSlice(v.Type(), 0, len(n.Content))
		for i, item := range n.Content {
			e := reflect.New(v.Type().Elem())
			if df, ok := e.Interface().(defaulter); ok {
				df.setDefaults()
			}
			p := fmt.Sprintf("%s[%d]", path, i)
			d.lines[p] = item.Line
			d.decode(item, e.Elem(), p)
			s = reflect.Append(s, e.Elem())
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.errorf(n, path, "expected a mapping, got a %s", kindName(n.Kind))
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			p := joinPath(path, k.Value)
			d.lines[p] = k.Line
			e := reflect.New(v.Type().Elem()).Elem()
			d.decode(val, e, p)
			m.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), e)
		}
		v.Set(m)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, path, "expected a string, got a %s", kindName(n.Kind))
			return
		}
		v.SetString(n.Value)
	case reflect.Int, reflect.Int64, reflect.Int32:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n, path, "expected an integer, got a %s", kindName(n.Kind))
			return
		}
		i, err := strconv.ParseInt(n.Value, 0, 64)
		if err != nil {
			d.errorf(n, path, "expected an integer, got %q", n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.Decode(&b) != nil {
			d.errorf(n, path, "expected true or false, got %q", n.Value)
			return
		}
		v.SetBool(b)
	case reflect.Float64:
		f, err := strconv.ParseFloat(n.Value, 64)
		if n.Kind != yaml.ScalarNode || err != nil {
			d.errorf(n, path, "expected a number, got %q", n.Value)
			return
		}
		v.SetFloat(f)
	default:
		d.errorf(n, path, "cannot decode into %s", v.Type())
	}
}

// decodeStruct decodes the mapping n into struct v. Keys in skip belong to
// someone else and are passed over.
func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string, skip map[string]bool) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping, got a %s", kindName(n.Kind))
		return
	}
	fields, names := yamlFields(v.Type())
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		p := joinPath(path, k.Value)
		d.lines[p] = k.Line
		if seen[k.Value] {
			d.errorf(k, p, "key given twice")
			continue
		}
		seen[k.Value] = true
		if skip[k.Value] {
			continue
		}
		idx, ok := fields[k.Value]
		if !ok {
			known := names
			for s := range skip {
				known = append(known, s)
			}
			sort.Strings(known)
			d.errorf(k, p, "unknown key (known keys here: %s)", strings.Join(known, ", "))
			continue
		}
		d.decode(val, v.FieldByIndex(idx), p)
	}
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "scalar"
	}
	return "node"
}

var envRef = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// expandEnv replaces ${NAME} and ${NAME:-default} in every scalar value of
// n; $$ stands for a literal $. An unset variable without default is an
// error naming it.
func (d *decoder) expandEnv(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "$") {
		n.Value = envRef.ReplaceAllStringFunc(n.Value, func(m string) string {
			if m == "$$" {
				return "$"
			}
			sub := envRef.FindStringSubmatch(m)
			if v, ok := os.LookupEnv(sub[1]); ok {
				return v
			}
			if sub[2] != "" {
				return sub[3]
			}
			d.errorf(n, "", "environment variable %s is not set (write ${%s:-default} for a default)", sub[1], sub[1])
			return ""
		})
		if n.Tag != "!!str" && n.Style == 0 {
			n.Tag = "" // let the expanded value resolve as what it looks like
		}
	}
	for _, c := range n.Content {
		d.expandEnv(c)
	}
}
