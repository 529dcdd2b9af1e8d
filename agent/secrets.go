package agent

import (
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// Secrets at rest: a secret written in the config (a password: not taken
// from ${ENV}) or kept in a file the config names (password_file, a TLS
// private key) should not be readable by every user of the machine. That
// is worth a warning, not a refusal: the operator may have reasons.

// literalSecrets returns the lines of the secret keys of n (before ${ENV}
// expansion) whose value is written in the file.
func literalSecrets(n *yaml.Node) []int {
	var lines []int
	walkKeys(n, "", func(parent, key string, v *yaml.Node) {
		if key == "password" && v.Kind == yaml.ScalarNode && v.Value != "" && !strings.Contains(v.Value, "${") {
			lines = append(lines, v.Line)
		}
	})
	return lines
}

type secretFile struct {
	key  string
	line int
	path string
}

// secretFiles returns the files of n (after ${ENV} expansion) that hold a
// secret: password_file, and tls.key (a private key).
func secretFiles(n *yaml.Node) []secretFile {
	var files []secretFile
	walkKeys(n, "", func(parent, key string, v *yaml.Node) {
		if v.Kind != yaml.ScalarNode || v.Value == "" {
			return
		}
		if key == "password_file" || parent == "tls" && key == "key" {
			files = append(files, secretFile{key: key, line: v.Line, path: v.Value})
		}
	})
	return files
}

// walkKeys calls f for every key of every mapping in n, with the key of
// the mapping holding it.
func walkKeys(n *yaml.Node, parent string, f func(parent, key string, v *yaml.Node)) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			walkKeys(c, parent, f)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			f(parent, k.Value, v)
			walkKeys(v, k.Value, f)
		}
	}
}

// secretWarnings returns a warning for the config at path if it holds a
// secret (at lines) and every user can read it, and one for each secret
// file every user can read.
func secretWarnings(path string, lines []int, files []secretFile) []string {
	var out []string
	if len(lines) > 0 {
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o004 != 0 {
			out = append(out, fmt.Sprintf("%s:%d: password: the config holds a secret and every user can read it (mode %v): run chmod o-r %s, or take the password from password_file or ${ENV}",
				path, lines[0], fi.Mode().Perm(), path))
		}
	}
	for _, sf := range files {
		if fi, err := os.Stat(sf.path); err == nil && fi.Mode().Perm()&0o004 != 0 {
			out = append(out, fmt.Sprintf("%s:%d: %s: %s holds a secret and every user can read it (mode %v): run chmod o-r %s",
				path, sf.line, sf.key, sf.path, fi.Mode().Perm(), sf.path))
		}
	}
	return out
}
