package file

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/logagent/logagent"
	"github.com/logagent/logagent/checkpoint"
	"github.com/logagent/logagent/inputs/file/multiline"
)

// Config is one input, resolved and validated by the agent.
type Config struct {
	ID         string
	Paths      []string // absolute globs; ** matches any depth
	Exclude    []string // globs on the base name or the full path
	Category   string
	StartAtEnd bool // for files present at the input's very first start
	// IgnoreOlder, when > 0: a file without a checkpoint entry last
	// modified longer ago than this is started at its end.
	IgnoreOlder     time.Duration
	MaxMessageBytes int
	LinesPerMessage int
	// Multiline, when set, joins lines into events (package multiline)
	// instead of LinesPerMessage; its MaxBytes is MaxMessageBytes.
	Multiline *multiline.Config
	Fields    map[string]string
	Host      string

	// Watcher is the agent's inotify instance, shared by its inputs; nil:
	// the input makes one of its own.
	Watcher *Watcher

	ScanInterval      time.Duration // rescan of the globs
	PollInterval      time.Duration // look at an idle file when fsnotify says nothing
	CloseInactive     time.Duration // close a file idle that long (reopened when it grows)
	CloseRemovedAfter time.Duration // close a removed file after that long even if unread
	MaxOpenFiles      int
	FingerprintBytes  int
	BlockBytes        int // read buffer size for backfill
	// FollowSymlinks reads the files symbolic links matched by the globs
	// point to, if the links' owners could read them (see openLog);
	// otherwise links are skipped.
	FollowSymlinks bool

	// OnBacklog, if set, is called when a file is found more than
	// backlogBlocks read blocks behind, at most once per block read. It
	// must not block.
	OnBacklog func()
}

// PublishFunc hands a chunk to the outputs. It blocks while they are
// behind, and returns an error only when ctx is done.
type PublishFunc func(ctx context.Context, c *logagent.Chunk) error

// Input harvests the files of one input.
type Input struct {
	// immutable after New
	cfg        Config
	log        *slog.Logger
	store      *checkpoint.Store
	env        harvestEnv      // what every harvester is given (newHarvester)
	ckpt       fileCheckpoint  // what every harvester's tracker is given
	scanReq    chan struct{}   // a token: scan soon (notifyScan)
	idleWorker chan *harvester // unbuffered: a send succeeds only if a worker waits

	// set by Run before its first scan, read-only after
	ctx      context.Context
	watch    *dirWatch // the input's subscription to the agent's watcher
	firstRun bool      // no checkpoint entry for this input at start: start_at applies
	// resumeSince is the latest time an offset of the input was
	// recorded before this start (zero at the first): files written
	// since under rotated names, and never seen, are read (findUnseen).
	resumeSince time.Time

	// safe for concurrent use (atomics, sync types)
	metrics Metrics
	// watched holds the directories fsnotify watches: files there are
	// woken by events and polled only as a fallback, rarely; false once
	// events were seen not to come (deafen).
	watched sync.Map // of string to bool; read on every park
	// linked caches throughLink by directory (string to bool), emptied
	// at each listing so that a repointed link is seen: harvesters ask
	// at their name checks, thousands in one directory.
	linked sync.Map
	// wg counts the goroutines running harvesters, or waiting as idle
	// workers for one to run (see runHarvester).
	wg          sync.WaitGroup
	idleWorkers atomic.Int32
	// slotWanted is set when a file with unread bytes found no room
	// under max_open_files: Run scans again at every tick until every
	// such file got a slot.
	slotWanted atomic.Bool
	polling    atomic.Bool // a directory of the globs is not watched (dirs)

	// mu guards what follows, and the harvester fields marked "under
	// Input.mu".
	mu sync.Mutex
	// byInode holds every open file's harvester; byPath holds them by the
	// name they were opened by, and by their link's target.
	byInode map[devIno]*harvester
	byPath  map[string]*harvester
	// reported holds the problems a rescan retries (a file that cannot
	// be read); noted those that only a change of the directory can mend
	// (a link not followed, a FIFO). Both are logged through problems, a
	// summary per kind rather than a line per file.
	reported map[string]bool
	noted    map[string]bool
	problems problemLog
	// linkOf maps the target of a followed link (the file, existing or
	// not) to the link: an event naming the target opens the link.
	// linkDirs are the targets' directories, watched like the globs'.
	linkOf   map[string]string
	linkDirs map[string]bool
	// readDirs are those of linkDirs where a link's target was opened,
	// its owner allowed: a checkpoint entry may name a file there.
	readDirs map[string]bool
	// removedAt is when a file being read was first seen removed
	// (closeRemoved).
	removedAt map[*harvester]time.Time
	// polls queues the next look at each parked harvester; stopping is
	// set once Run returns, when nothing may be unparked any more.
	polls    pollQueue
	stopping bool
	busy     map[*harvester]struct{} // the harvesters not parked
	// wakes are wake channels let go of by harvesters that parked, empty,
	// for the next harvester that needs one (see wakeLocked): at most
	// maxIdleWorkers.
	wakes []chan struct{}
	// recent holds harvesters that parked soon after data: their
	// delivery rate is still sampled (see Reading).
	recent map[*harvester]struct{}
	// listingStale is set when a file was closed since the last full
	// scan: the next one lists the directories again.
	listingStale bool
	// evictedSince is set when a file was closed to make room under
	// max_open_files since the last full scan: the next one lists the
	// directories unless events vouch for them (eventsVouch), since then
	// a write to the file raises an event that opens it again.
	evictedSince bool
	// dirs are the directories of the globs at the last full scan.
	dirs []string

	// Run's goroutine only
	// listing is what the directories the globs list looked like at the
	// last full scan. A scan with neither a change nor a problem to retry
	// skips listing thousands of files again.
	listing dirListing
	// vouchedSince is when the listing was taken that events have told
	// every change since (see eventsVouch); zero when they do not.
	vouchedSince time.Time
	// listings and periodicScans count full listings and periodic scans,
	// for tests.
	listings, periodicScans atomic.Int64
	// evictQ holds the files to close to make room under max_open_files,
	// least recently active first.
	evictQ []*harvester
	// seenInDir holds, per directory, the files under rotated names seen
	// at the last full scan (findUnseen).
	seenInDir map[string]map[devIno]struct{}
	// opened holds the harvesters a scan, or a burst of events, opened
	// and has yet to run (runOpened).
	opened []*harvester
}

type devIno struct{ dev, ino uint64 }

// watchDirectories is false in tests of polling alone, as where fsnotify
// is unavailable (out of inotify watches).
var watchDirectories = true

// New returns an input; it does nothing until Run.
func New(cfg Config, store *checkpoint.Store, budget *Budget, publish PublishFunc, log *slog.Logger) *Input {
	need := cfg.MaxMessageBytes + 1
	if cfg.Multiline != nil {
		cfg.Multiline = joinerConfig(cfg)
		need = 2*cfg.MaxMessageBytes + 2 // see multiline.Joiner.Cut
	}
	smallSize := max(64<<10, need+minRead)
	largeSize := max(cfg.BlockBytes, 2*smallSize)
	in := &Input{
		cfg:        cfg,
		log:        log.With("input", cfg.ID),
		store:      store,
		ckpt:       fileCheckpoint{store: store, input: cfg.ID},
		scanReq:    make(chan struct{}, 1),
		byInode:    make(map[devIno]*harvester),
		byPath:     make(map[string]*harvester),
		reported:   make(map[string]bool),
		noted:      make(map[string]bool),
		linkOf:     make(map[string]string),
		linkDirs:   make(map[string]bool),
		readDirs:   make(map[string]bool),
		removedAt:  make(map[*harvester]time.Time),
		busy:       make(map[*harvester]struct{}),
		recent:     make(map[*harvester]struct{}),
		idleWorker: make(chan *harvester),
	}
	in.env = harvestEnv{
		log:              in.log,
		mu:               &in.mu,
		chunker:          Chunker{MaxMessageBytes: cfg.MaxMessageBytes, LinesPerMessage: cfg.LinesPerMessage},
		multiline:        cfg.Multiline,
		need:             need,
		mini:             &blockPool{size: miniBlock, budget: budget},
		tiny:             &blockPool{size: tinyBlock, budget: budget},
		small:            &blockPool{size: smallSize, budget: budget},
		large:            &blockPool{size: largeSize, budget: budget},
		publish:          publish,
		store:            store,
		metrics:          &in.metrics,
		pollInterval:     cfg.PollInterval,
		closeInactive:    cfg.CloseInactive,
		fingerprintBytes: cfg.FingerprintBytes,
		onBacklog:        cfg.OnBacklog,
	}
	return in
}

// Metrics returns the input's counters.
func (in *Input) Metrics() *Metrics { return &in.metrics }

// Run harvests until ctx is done, then waits for every harvester to stop.
func (in *Input) Run(ctx context.Context) error {
	in.ctx = ctx
	entries := in.store.Entries(in.cfg.ID)
	in.firstRun = len(entries) == 0
	for _, e := range entries {
		if e.Updated.After(in.resumeSince) {
			in.resumeSince = e.Updated
		}
	}
	watch := in.cfg.Watcher
	var watchWG sync.WaitGroup
	if watch == nil {
		watchCtx, stopWatch := context.WithCancel(context.Background())
		watch = NewWatcher(watchDirectories, in.log)
		watch.Open()
		watchWG.Add(1)
		go func() {
			defer watchWG.Done()
			watch.Run(watchCtx)
		}()
		defer watchWG.Wait()
		defer stopWatch()
	}
	w := &dirWatch{w: watch, sub: watch.subscribe()}
	defer watch.unsubscribe(w.sub)
	in.watch = w
	in.scan(w, scanInitial)

	// One ticker for polls and scans: each timer channel in the select
	// costs timer-heap work every time the loop blocks and wakes, that is
	// at every event.
	tick := time.NewTicker(min(in.cfg.PollInterval, in.cfg.ScanInterval))
	defer tick.Stop()
	nextScan := time.Now().Add(in.cfg.ScanInterval)
	defer in.closeParked()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			in.pollDue(now)
			in.env.mini.trim(now)
			in.env.tiny.trim(now)
			in.env.small.trim(now)
			in.env.large.trim(now)
			// A directory nothing watches is looked at every poll: a
			// file created there and renamed out of the globs before
			// the next look would never be opened (findUnseen finds
			// it, but only by chance once it moved again).
			if !now.Before(nextScan) || in.slotWanted.Load() {
				nextScan = now.Add(in.cfg.ScanInterval)
				in.scan(w, scanPeriodic)
			} else if in.polling.Load() {
				in.pollDirs(w)
			}
			in.flushProblems()
		case <-in.scanReq:
			in.scan(w, scanAsked)
		case ev := <-w.sub.events:
			in.handleEvent(w, ev)
			// Those queued behind it, without a select over every
			// channel each; at most a burst's worth, so that the ticker
			// and ctx are seen between bursts.
			for range eventBurst - 1 {
				ev, ok := queuedEvent(w.sub.events)
				if !ok {
					break
				}
				in.handleEvent(w, ev)
			}
			in.runOpened() // the files the events had opened
		case <-w.sub.rescan:
			// Events were lost, or inotify became available: look
			// again, at every directory and file.
			in.mu.Lock()
			in.listingStale = true
			in.mu.Unlock()
			in.scan(w, scanAsked)
			in.signalAll()
		}
	}
}

// dirWatch is an input's subscription to the agent's watcher.
type dirWatch struct {
	w   *Watcher
	sub *watchSub
}

// eventBurst is an input's queue of events, how many Run takes in a row,
// and the most a pass of the Watcher takes (see take).
const eventBurst = 256

// joinerConfig returns cfg.Multiline with the bound of cfg's messages.
func joinerConfig(cfg Config) *multiline.Config {
	m := *cfg.Multiline
	m.MaxBytes = cfg.MaxMessageBytes
	return &m
}
