// Package file is the file input: it finds the files matching an input's
// globs, reads each through one descriptor whatever happens to its name
// (rename and copytruncate rotation, removal), cuts what it reads into
// messages of whole lines and remembers, per file identity, the offset up
// to which every output has acknowledged.
//
// # Where things are
//
//   - input.go: Config, the Input and its Run loop (events, ticks, scans).
//   - env.go: the seam. A harvester is given a harvestEnv (immutable) and a
//     host (what it may ask of its Input); it reaches its input through
//     nothing else.
//   - harvester.go: reading one file: run, readOnce, cut and emit (where
//     bytes become messages and leave), atEOF, finish.
//   - discovery.go, globs.go, poll.go, watcher.go: which files to read, by
//     scans, fsnotify events and polls.
//   - start.go: where a file starts (startOffset), for Input.open and for
//     the plan of --dry-run (plan.go).
//   - lifecycle.go: starting, waking and forgetting harvesters; park.go:
//     idle ones, parked without a goroutine.
//   - rotation.go: a harvester noticing its name changed (rename, removal).
//   - copytruncate.go: truncation, rewrites and copytruncate rotation.
//   - recovery.go: files of checkpoint entries not open (after a restart,
//     or closed), renamed or truncated meanwhile.
//   - status.go, metrics.go, problems.go: what the input tells.
//   - identity.go, open.go, tracker.go, block.go, chunker.go, listing.go:
//     the pieces underneath.
//
// # Who may touch what
//
// The fields of Input and harvester are grouped by who may touch them:
// immutable, atomic, under Input.mu, or one goroutine only (Run's, or the
// harvester's owner: the goroutine running it, or while it is parked the
// one that took it from the poll queue). A harvester field "under
// Input.mu" is changed by its owner holding the lock (harvestEnv.mu) and
// read by the owner without it, by the input with it.
//
// # A file's life
//
// A file is known by its identity (device, inode, and a fingerprint of its
// first bytes, see identity.go), not by its name. Input.open opens it,
// found by a scan (Input.scan) or an fsnotify event (Input.handleEvent);
// its start is decided by startOffset from its checkpoint entry (found by
// lookup); Input.startLinked makes its harvester, which keeps the
// descriptor until the file is done with, and the harvester runs (a scan,
// or a burst of events, runs what it opened in batches, their checkpoint
// entries flushed once for the batch: Input.runOpened). Its state
// (fileState):
//
//   - active: the path still names it. An idle active file parks
//     (Input.park: no goroutine, an entry of the poll queue) and is run
//     again by an event (Input.signal) or its poll (Input.pollDue): busy ↔
//     parked, as often as it is written. An active file idle for
//     close_inactive is closed (atEOF), and opened again, by identity and
//     from its checkpoint, when it grows; so is a parked one when
//     max_open_files wants its slot (evictIdle).
//   - renamed: its name holds another file, or none (harvester.checkName).
//     It is read to its end, then closed once idle for close_inactive
//     (harvester.finish: every chunk acknowledged first). The scan opens
//     the file now under the old name.
//   - removed: unlinked (link count 0). Read to its end and closed after
//     min(close_inactive, 5 s) idle, its checkpoint entry forgotten; or
//     closed unread after close_removed_after (Input.closeRemoved), the
//     loss counted, since it holds its disk space.
//
// Copytruncate (copytruncate.go): a new file next to one being read whose
// first bytes are that file's (or which is still empty) may be its copy.
// It is pending: opened, held unread (harvester.waitCopyCheck), until
// either the original is seen truncated (harvester.truncated) and its
// copy adopted from where the original was read (Input.adoptCopy,
// Input.adopt), or the original is seen intact for a scan interval after
// the copy appeared (Input.copyCheck), and the file is released, to be
// read from its start as a file of its own. The truncated original reads
// again from 0.
//
// After a restart (recovery.go), a file whose entry is not open and whose
// name holds another file is looked for by inode in its directory
// (Input.recoverRenamed) and read to its end; one truncated meanwhile has
// its copy read from the entry's offset (Input.resumeCopy).
//
// # From a read to the fsynced checkpoint
//
//  1. harvester.readOnce reads into a block (block.go); harvester.cut has
//     Chunker.Cut frame whole lines into messages, each carrying the file
//     offset just past it (Message.Offset). With multiline, the
//     harvester's multiline.Joiner cuts events instead (package
//     multiline): the event it holds open stays in the block, out of the
//     chunk, so that the checkpoint never passes its first line; run sends
//     it when it times out (eventDue; idleDelay bounds the park, and a
//     poll of a parked file with an event due runs it), finish when the
//     file is done.
//  2. harvester.emit registers the chunk's end with the file's tracker
//     (tracker.add; the chunk, from getChunk, has chunk.finish as its
//     Chunk.OnDone), makes sure the file's checkpoint entry is on disk
//     before its first message goes out (checkpoint.Store.Sync, once per
//     harvester), and calls the PublishFunc (harvestEnv.publish).
//  3. The PublishFunc is the agent's inputRun.publish (agent/agent.go): it
//     applies the line filters (a chunk they empty is done at once), calls
//     Chunk.Expect with the number of routed outputs and queues the chunk
//     to each; it blocks while a queue is full, which pauses reading.
//  4. Each output's runner (agent/scheduler.go) calls Chunk.Ack for the
//     messages it delivered (or dropped as permanently undeliverable).
//     The last Ack calls OnDone: chunk.finish.
//  5. chunk.finish calls tracker.done, which moves the committed offset to
//     the end of the longest run of done chunks in reading order and
//     records it in the store (checkpoint.Store.Set); then it releases
//     the block.
//  6. checkpoint.Store.Run flushes the store every interval: the journal
//     appended and fdatasynced, or a snapshot written (see the checkpoint
//     package). A crash re-reads from the last flushed offset: what was
//     delivered after it is sent again, nothing is skipped.
package file
