// Package kafka is the Kafka output (type: kafka). It produces each message
// as one record with segmentio/kafka-go's Writer, one synchronous
// WriteMessages call per batch, and maps the brokers' answers to what the
// agent's scheduler does next.
//
// A record's topic is the message's category unless `topic` is set; its key
// is empty (round robin over partitions), the host or the path (hashed to a
// partition, as Sarama does). Its headers are those of the Flume output:
// timestamp (milliseconds, when read), host, path, offset (just past the
// message in its file), category, input, then the input's fields sorted by
// name (a field named like one of these is left out). Its timestamp is when
// the message was read.
//
// How answers map to Send's result:
//
//	answer                                         result for the agent
//	---------------------------------------------  ------------------------------------
//	every record acknowledged (acks all or one)    nil: delivered
//	acks none                                      nil once written: nothing is known
//	per-partition error Kafka calls retriable      PartialError.Retry for its messages
//	  (NOT_LEADER, REQUEST_TIMED_OUT, ...), after
//	  kafka-go's own 3 attempts
//	per-partition error Kafka calls fatal but a    PartialError.Retry: dropping
//	  person can fix (TOPIC_AUTHORIZATION_FAILED,   logs on a fixable cause would lose
//	  UNSUPPORTED_VERSION, ...)                     them
//	MESSAGE_TOO_LARGE for a partition batch        the messages are sent one by one: the
//	                                                ones refused alone are Permanent
//	INVALID_TOPIC_EXCEPTION, INVALID_RECORD        PartialError.Permanent
//	category not a valid topic name, or body       PartialError.Permanent, not sent
//	  above max_message_bytes
//	failure before producing (dial, TLS, SASL,     plain error: the whole batch is retried
//	  metadata, unknown topic); with several        (with several topics, each topic's
//	  topics in the batch, per topic                messages are tried on their own)
//	context done                                   the context's error: whole batch
//
// Bodies are copied into a buffer the output reuses from batch to batch, so
// a batch costs no allocation per message in this package (kafka-go itself
// allocates two per message for its metadata lookup, which this package
// answers from the call's first answer for the topic: see transport). A record is at
// least once in Kafka: a batch the broker applied but answered with an error
// (REQUEST_TIMED_OUT after the append, a connection lost before the answer)
// is sent again and duplicated.
package kafka
