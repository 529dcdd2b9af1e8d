// Flume NG's Thrift source protocol (flume-ng-sdk flume.thrift), served by
// Flume's `thrift` source with framed transport and, by default, the compact
// protocol.

namespace go flume
namespace py flume

struct ThriftFlumeEvent {
  1: required map <string, string> headers,
  2: required binary body,
}

enum Status {
  OK,
  FAILED,
  ERROR,
  UNKNOWN
}

service ThriftSourceProtocol {
  Status append(1: ThriftFlumeEvent event),
  Status appendBatch(1: list<ThriftFlumeEvent> events),
}
