// Scribe's logging service, as served by facebook/scribe (port 1463) and by
// Flume's Scribe source. The real scribe.thrift declares
// `service scribe extends fb303.BaseService`; fb303 only adds monitoring
// methods, so it is left out: Log's name, argument ids and types, and result
// are the same on the wire.

namespace go scribe
namespace py scribe

enum ResultCode {
  OK = 0,
  TRY_LATER = 1
}

struct LogEntry {
  1: string category,
  2: string message
}

service scribe {
  ResultCode Log(1: list<LogEntry> messages);
}
