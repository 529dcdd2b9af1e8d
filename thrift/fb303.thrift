// The monitoring half of Facebook's fb303 BaseService (fb303.thrift), which
// a Scribe server serves beside Log: scribe_ctrl and Scribe-based
// monitoring call getStatus and getCounters. The option, profile and
// shutdown methods are left out; the names, ids and types of the methods
// kept are fb303's, so they are the same on the wire.

namespace go fb303
namespace py fb303

enum fb_status {
  DEAD = 0,
  STARTING = 1,
  ALIVE = 2,
  STOPPING = 3,
  STOPPED = 4,
  WARNING = 5,
}

service FacebookService {
  string getName(),
  string getVersion(),
  fb_status getStatus(),
  string getStatusDetails(),
  map<string, i64> getCounters(),
  i64 getCounter(1: string key),
  i64 aliveSince(),
}
