// Command pkgcalls measures how the files of one Go package depend on each
// other, to see whether a package's files are cut by concern:
//
//	cd tools && go run ./pkgcalls ../inputs/file
//
// It prints, for the package's non-test files:
//   - the lines of the methods of each receiver type (declaration to
//     closing brace, comments above excluded), and how many methods;
//   - field reaches through a field of pointer-to-struct type of the same
//     package (x.in.y where in is *Input): how often one type's methods
//     reach into another type's fields;
//   - the file→file matrix: how many references (calls and method values)
//     the functions of one file make to the package's own functions and
//     methods declared in another file;
//   - the pairs of files with references running both ways.
package main

import (
	"flag"
	"fmt"
	"go/ast"
	"go/token"
	"go/types"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/tools/go/packages"
)

func main() {
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: pkgcalls DIR   (the directory of one package)")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(flag.Arg(0)); err != nil {
		fmt.Fprintln(os.Stderr, "pkgcalls:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	cfg := &packages.Config{
		Mode: packages.NeedName | packages.NeedFiles | packages.NeedSyntax |
			packages.NeedTypes | packages.NeedTypesInfo,
		Dir: abs,
	}
	pkgs, err := packages.Load(cfg, ".")
	if err != nil {
		return err
	}
	if len(pkgs) != 1 {
		return fmt.Errorf("%s: %d packages, want 1", dir, len(pkgs))
	}
	p := pkgs[0]
	if len(p.Errors) > 0 {
		return fmt.Errorf("%s: %v", dir, p.Errors[0])
	}
	r := measure(p)
	r.print(os.Stdout, p.PkgPath)
	return nil
}

type report struct {
	files   []string
	lines   map[string]int    // receiver type → lines of its methods
	inFile  map[[2]string]int // {receiver type, file} → lines
	methods map[string]int
	reaches map[[2]string]int      // {receiver type, field} → uses
	calls   map[[2]string]int      // {from file, to file} → references
	callees map[[2]string][]string // {from, to} → the names referred to
}

func measure(p *packages.Package) *report {
	r := &report{
		lines:   map[string]int{},
		inFile:  map[[2]string]int{},
		methods: map[string]int{},
		reaches: map[[2]string]int{},
		calls:   map[[2]string]int{},
		callees: map[[2]string][]string{},
	}
	base := func(pos token.Pos) string { return filepath.Base(p.Fset.Position(pos).Filename) }
	for _, f := range p.Syntax {
		from := base(f.Pos())
		r.files = append(r.files, from)
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok {
				continue
			}
			recv := ""
			if fd.Recv != nil && len(fd.Recv.List) == 1 {
				recv = typeName(fd.Recv.List[0].Type)
				start := p.Fset.Position(fd.Pos()).Line
				end := p.Fset.Position(fd.End()).Line
				r.lines[recv] += end - start + 1
				r.inFile[[2]string{recv, from}] += end - start + 1
				r.methods[recv]++
			}
			ast.Inspect(fd, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.SelectorExpr:
					r.reach(p, recv, n)
				case *ast.Ident:
					obj, ok := p.TypesInfo.Uses[n].(*types.Func)
					if !ok || obj.Pkg() != p.Types {
						return true
					}
					to := base(obj.Pos())
					if to == from {
						return true
					}
					k := [2]string{from, to}
					r.calls[k]++
					name := obj.Name()
					if sig, ok := obj.Type().(*types.Signature); ok && sig.Recv() != nil {
						name = typeString(sig.Recv().Type()) + "." + name
					}
					r.callees[k] = append(r.callees[k], name)
				}
				return true
			})
		}
	}
	sort.Strings(r.files)
	return r
}

// reach counts x.f.y, with f a field of pointer-to-struct type of the
// package, in the methods of recv: a method reaching through one of its
// fields into another object of the package.
func (r *report) reach(p *packages.Package, recv string, sel *ast.SelectorExpr) {
	if recv == "" {
		return
	}
	inner, ok := sel.X.(*ast.SelectorExpr)
	if !ok {
		return
	}
	s := p.TypesInfo.Selections[inner]
	if s == nil || s.Kind() != types.FieldVal {
		return
	}
	ptr, ok := s.Obj().Type().(*types.Pointer)
	if !ok {
		return
	}
	named, ok := ptr.Elem().(*types.Named)
	if !ok || named.Obj().Pkg() != p.Types {
		return
	}
	if _, ok := named.Underlying().(*types.Struct); !ok {
		return
	}
	r.reaches[[2]string{recv, exprString(inner)}]++
}

func typeName(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.StarExpr:
		return "*" + typeName(t.X)
	case *ast.Ident:
		return t.Name
	case *ast.IndexExpr:
		return typeName(t.X)
	}
	return fmt.Sprintf("%T", e)
}

func typeString(t types.Type) string {
	return types.TypeString(t, func(*types.Package) string { return "" })
}

func exprString(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return exprString(e.X) + "." + e.Sel.Name
	}
	return "?"
}

func (r *report) print(w *os.File, pkg string) {
	fmt.Fprintf(w, "package %s (%d files, tests excluded)\n\n", pkg, len(r.files))

	fmt.Fprintln(w, "lines of methods per receiver type:")
	var types []string
	for t := range r.lines {
		types = append(types, t)
	}
	sort.Slice(types, func(i, j int) bool { return r.lines[types[i]] > r.lines[types[j]] })
	for _, t := range types {
		fmt.Fprintf(w, "  %-22s %5d lines  %3d methods", t, r.lines[t], r.methods[t])
		var in []string
		for _, f := range r.files {
			if n := r.inFile[[2]string{t, f}]; n > 0 && n < r.lines[t] {
				in = append(in, fmt.Sprintf("%s %d", f, n))
			}
		}
		if len(in) > 0 {
			fmt.Fprintf(w, "  (%s)", strings.Join(in, ", "))
		}
		fmt.Fprintln(w)
	}

	fmt.Fprintln(w, "\nreaches through a field into another object of the package (x.f.y):")
	var reaches [][2]string
	for k := range r.reaches {
		reaches = append(reaches, k)
	}
	sort.Slice(reaches, func(i, j int) bool { return r.reaches[reaches[i]] > r.reaches[reaches[j]] })
	if len(reaches) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for _, k := range reaches {
		fmt.Fprintf(w, "  %-22s %-12s %4d\n", k[0], k[1]+".", r.reaches[k])
	}

	fmt.Fprintln(w, "\nfile→file references (row calls column; calls and method values of the package's own functions):")
	short := func(f string) string { return strings.TrimSuffix(f, ".go") }
	width := 4
	for _, f := range r.files {
		width = max(width, len(short(f)))
	}
	fmt.Fprintf(w, "  %-*s", width, "")
	for _, f := range r.files {
		fmt.Fprintf(w, " %*s", min(len(short(f)), 8), abbrev(short(f), 8))
	}
	fmt.Fprintln(w)
	for _, from := range r.files {
		fmt.Fprintf(w, "  %-*s", width, short(from))
		for _, to := range r.files {
			n := r.calls[[2]string{from, to}]
			cell := "."
			if n > 0 {
				cell = fmt.Sprint(n)
			}
			fmt.Fprintf(w, " %*s", min(len(short(to)), 8), cell)
		}
		fmt.Fprintln(w)
	}

	fmt.Fprintln(w, "\nfile pairs with references both ways (a→b / b→a, and what each refers to):")
	pairs := 0
	for i, a := range r.files {
		for _, b := range r.files[i+1:] {
			ab, ba := r.calls[[2]string{a, b}], r.calls[[2]string{b, a}]
			if ab == 0 || ba == 0 {
				continue
			}
			pairs++
			fmt.Fprintf(w, "  %-14s ↔ %-14s %4d / %d\n", short(a), short(b), ab, ba)
			fmt.Fprintf(w, "      %s → %s\n", short(a), strings.Join(uniq(r.callees[[2]string{a, b}]), " "))
			fmt.Fprintf(w, "      %s → %s\n", short(b), strings.Join(uniq(r.callees[[2]string{b, a}]), " "))
		}
	}
	fmt.Fprintf(w, "  %d pairs\n", pairs)
}

func abbrev(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

func uniq(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	sort.Strings(out)
	return out
}
