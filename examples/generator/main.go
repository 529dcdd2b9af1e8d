// Command generator appends sequence-numbered nginx-style lines to a log
// file, and rotates it by renaming every -rotate lines, so that tailing and
// rotation can be watched with `make run`.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"os"
	"time"
)

func main() {
	path := flag.String("path", "examples/data/generated.log", "file to append to")
	rate := flag.Int("rate", 5, "lines per second")
	rotate := flag.Int("rotate", 50, "rename the file to PATH.1 after this many lines (0: never)")
	flag.Parse()

	open := func() (*os.File, *bufio.Writer) {
		f, err := os.OpenFile(*path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			log.Fatal(err)
		}
		return f, bufio.NewWriter(f)
	}
	f, w := open()
	tick := time.NewTicker(time.Second / time.Duration(max(*rate, 1)))
	defer tick.Stop()
	for seq := 1; ; seq++ {
		<-tick.C
		fmt.Fprintf(w, "10.0.0.%d - - [%s] \"GET /item/%d HTTP/1.1\" 200 %d \"-\" \"generator\" seq=%d\n",
			seq%250+1, time.Now().Format("02/Jan/2006:15:04:05 -0700"), seq, 100+seq%900, seq)
		if err := w.Flush(); err != nil {
			log.Fatal(err)
		}
		if *rotate > 0 && seq%*rotate == 0 {
			f.Close()
			if err := os.Rename(*path, *path+".1"); err != nil {
				log.Fatal(err)
			}
			f, w = open()
		}
	}
}
