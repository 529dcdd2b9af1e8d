package file

import (
	"log/slog"
	"sync"
	"time"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/checkpoint"
	"github.com/logagent/logagent/inputs/file/multiline"
)

// The seam between the input and its harvesters: what a harvester is given
// (harvestEnv) and what it may ask of its input (host). The harvester
// reaches its input through nothing else.

// harvestEnv is what every harvester of an input is given: the same for
// all of them, set by New and never changed. A harvester touches nothing of
// its input but this and its host.
type harvestEnv struct {
	log *slog.Logger
	// mu is Input.mu. It guards the harvester fields marked "under
	// Input.mu": the harvester takes it to change them, the input to read
	// them.
	mu *sync.Mutex
	// chunker frames the bytes read into messages (see harvester.cut);
	// with multiline set, each harvester's joiner does.
	chunker   Chunker
	multiline *multiline.Config
	// need is the room a read block keeps for what is not in a message
	// yet: a line and a byte (the chunker), or an open event, its newline
	// and the line after it and a byte (multiline.Joiner.Cut).
	need int
	// mini, tiny, small and large are the pools of read blocks (see
	// ensureRoom).
	mini, tiny, small, large *blockPool
	// publish hands a chunk to the outputs (see harvester.emit).
	publish PublishFunc
	// store is the checkpoint: a file's entry is on disk before its first
	// message goes out (emit).
	store   *checkpoint.Store
	metrics *Metrics

	pollInterval     time.Duration
	closeInactive    time.Duration
	fingerprintBytes int
	onBacklog        func() // Config.OnBacklog, or nil
}

// host is what a harvester asks of the input that runs it. Every method is
// called from the harvester's own goroutine, without Input.mu held; h is the
// harvester calling.
type host interface {
	// park makes h idle, without a goroutine, until it is signalled or
	// its next poll in d is due. It reports false when h must go on
	// running (a signal came in meanwhile, or the input is stopping).
	// After true, h's goroutine returns at once without touching h.
	park(h *harvester, d time.Duration) bool
	// exited is told once, as h has closed its file and ends.
	exited(h *harvester)
	// adoptCopy is told that h's file was truncated while h had read it
	// up to readPos: the copy of the old content (copytruncate) is found
	// and read from readPos.
	adoptCopy(h *harvester, readPos int64)
	// copyCheck reports whether the pending file of h, whose identity is
	// id now, may still be a copytruncate copy of a file being read, and
	// is to be held unread.
	copyCheck(h *harvester, id logagent.FileID) (hold bool)
	// notifyScan asks for a scan of the globs soon; it never blocks.
	notifyScan()
	// isWatched reports whether fsnotify watches dir and its events come.
	isWatched(dir string) bool
	// throughLink reports whether the path dir goes through a symbolic
	// link.
	throughLink(dir string) bool
	// wakeChan returns the channel a signal to h leaves a token on. It
	// is h's until h parks (park returned true): only then may it change.
	wakeChan(h *harvester) <-chan struct{}
}
