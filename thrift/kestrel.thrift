// The subset of Kestrel 2.x's Thrift service (port 2229, framed transport,
// binary protocol) that logagent uses: put. Field ids and types are those of
// Kestrel's kestrel.thrift; the other methods are left out.

namespace go kestrel
namespace py kestrel

service Kestrel {
  // Returns how many of items were put, from the first: fewer than given
  // when the queue is full and refuses new items.
  i32 put(1: string queue_name, 2: list<binary> items, 3: i32 expiration_msec = 0)
}
