// Command minitail is the least a Go tailer built on fsnotify does, run in
// place of the agent by bench/e2e (-bin) to tell what the Go runtime and
// fsnotify cost from what the agent adds. It reads the agent's config file
// (-c), takes the first input's first glob (files in one directory) and
// the first output's path, keeps every matching file open, and on each
// fsnotify write or create event appends what the file grew by to the
// output. No checkpoint, rotation, batching, budget or identity: it keeps
// no promise the agent keeps, and loses lines the agent would not.
//
//	go build -o /tmp/minitail ./bench/minitail
//	GOMAXPROCS=1 go run ./bench/e2e -bin /tmp/minitail -many-base=false manyfiles
//
// GOMAXPROCS=1 is what a quiet agent runs on (agent.Procs).
package main

import (
	"errors"
	"flag"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/fsnotify/fsnotify"
	"gopkg.in/yaml.v3"
)

type config struct {
	Inputs []struct {
		Paths []string `yaml:"paths"`
	} `yaml:"inputs"`
	Outputs []struct {
		Path string `yaml:"path"`
	} `yaml:"outputs"`
}

func main() {
	cfgPath := flag.String("c", "", "the agent's config `file`")
	flag.Parse()
	if err := run(*cfgPath); err != nil {
		log.Fatal(err)
	}
}

func run(cfgPath string) error {
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		return err
	}
	var cfg config
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		return err
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	if len(cfg.Inputs) == 0 || len(cfg.Inputs[0].Paths) == 0 || len(cfg.Outputs) == 0 || cfg.Outputs[0].Path == "" {
		return errors.New("want an input with a path and an output with a path")
	}
	glob, outPath := cfg.Inputs[0].Paths[0], cfg.Outputs[0].Path
	if err := os.MkdirAll(filepath.Dir(outPath), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(outPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	if err := w.Add(filepath.Dir(glob)); err != nil {
		return err
	}
	files := map[string]*os.File{}
	buf := make([]byte, 64<<10)
	follow := func(name string) error {
		f := files[name]
		if f == nil {
			if ok, _ := filepath.Match(glob, name); !ok {
				return nil
			}
			opened, err := os.Open(name)
			if err != nil {
				return nil // gone already
			}
			f, files[name] = opened, opened
		}
		for {
			n, err := f.Read(buf)
			if n > 0 {
				if _, err := out.Write(buf[:n]); err != nil {
					return err
				}
			}
			if err == io.EOF || n == 0 {
				return nil
			}
			if err != nil {
				return err
			}
		}
	}
	names, err := filepath.Glob(glob)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := follow(n); err != nil {
			return err
		}
	}
	for {
		select {
		case ev := <-w.Events:
			if ev.Has(fsnotify.Write) || ev.Has(fsnotify.Create) {
				if err := follow(ev.Name); err != nil {
					return err
				}
			}
		case err := <-w.Errors:
			return err
		case <-stop:
			return nil
		}
	}
}
