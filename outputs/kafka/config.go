package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/logagent/logagent"
)

// Config holds the keys of a `type: kafka` output.
type Config struct {
	// Brokers are the bootstrap brokers, host:port. Required.
	Brokers []string `yaml:"brokers"`
	// Topic, when set, is the topic of every message; otherwise a message
	// goes to the topic named by its category.
	Topic string `yaml:"topic"`
	// Key chooses the record key and so the partition: none (round robin),
	// host or path (hash of that value, as Sarama's hash partitioner).
	Key string `yaml:"key"`
	// Compression of record batches: none, gzip, snappy, lz4 or zstd.
	Compression string `yaml:"compression"`
	// Acks is the produce acknowledgement required: all, one or none.
	// With none the broker does not answer, so nothing is known to fail.
	Acks string `yaml:"acks"`
	// AutoCreateTopic lets the broker create a missing topic on metadata
	// requests (when the broker allows it). Off by default: a missing topic
	// is retried and reported until someone creates it.
	AutoCreateTopic bool `yaml:"auto_create_topic"`
	// TLS, when present, connects with TLS.
	TLS *TLSConfig `yaml:"tls"`
	// SASL, when present, authenticates every connection.
	SASL *SASLConfig `yaml:"sasl"`
	// Timeout bounds dialing a broker and each produce or metadata request.
	Timeout time.Duration `yaml:"timeout"`
	// MaxBytes is the largest message body this output accepts (Kafka's
	// max.message.bytes). It also caps the produce request per partition.
	MaxBytes logagent.Size `yaml:"max_message_bytes"`
}

// TLSConfig holds the `tls:` keys. Files are read when the output first
// connects (and by Check), not when the configuration is loaded.
type TLSConfig struct {
	CA                 string `yaml:"ca"`   // PEM file of the CAs to trust; the system's when empty
	Cert               string `yaml:"cert"` // PEM client certificate, with key
	Key                string `yaml:"key"`  // PEM private key of cert
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
	ServerName         string `yaml:"server_name"` // the broker's host name when empty
}

// SASLConfig holds the `sasl:` keys. Password may come from an environment
// variable (the config loader expands ${VAR}) or from PasswordFile; neither
// is ever logged or shown by Describe.
type SASLConfig struct {
	Mechanism    string `yaml:"mechanism"` // plain, scram-sha-256 or scram-sha-512
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
}

// Defaults.
const (
	DefaultTimeout         = 10 * time.Second
	DefaultMaxMessageBytes = 1000000 // Kafka's historical message.max.bytes
)

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{
		Key:         "none",
		Compression: "none",
		Acks:        "all",
		Timeout:     DefaultTimeout,
		MaxBytes:    DefaultMaxMessageBytes,
	}
}

// MaxMessageBytes is the largest message body the output accepts; the agent
// refuses inputs that could build larger messages.
func (c *Config) MaxMessageBytes() int { return int(c.MaxBytes) }

var (
	keys          = []string{"none", "host", "path"}
	compressions  = []string{"none", "gzip", "snappy", "lz4", "zstd"}
	acksValues    = []string{"all", "one", "none"}
	saslMechanism = []string{"plain", "scram-sha-256", "scram-sha-512"}
)

// maxMessageBytesLimit keeps a produce request (one record batch per
// partition plus headers) within what a 32-bit Kafka size field and any
// sane broker accept.
const maxMessageBytesLimit = 1 << 30

// Validate checks the keys without any I/O. Errors are *logagent.FieldError
// values joined, with fields relative to the output.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, logagent.FieldErrorf("brokers", "must list at least one host:port"))
	}
	for i, b := range c.Brokers {
		if err := checkHostPort(b); err != nil {
			errs = append(errs, logagent.FieldErrorf(fmt.Sprintf("brokers[%d]", i), "%v", err))
		}
	}
	if c.Topic != "" {
		if err := checkTopic(c.Topic); err != nil {
			errs = append(errs, logagent.FieldErrorf("topic", "%v", err))
		}
	}
	errs = append(errs, oneOf("key", c.Key, keys), oneOf("compression", c.Compression, compressions), oneOf("acks", c.Acks, acksValues))
	if c.Timeout <= 0 {
		errs = append(errs, logagent.FieldErrorf("timeout", "must be positive, got %s", c.Timeout))
	}
	if c.MaxBytes <= 0 || c.MaxBytes > maxMessageBytesLimit {
		errs = append(errs, logagent.FieldErrorf("max_message_bytes", "must be between 1 and %s, got %d", logagent.Size(maxMessageBytesLimit), int64(c.MaxBytes)))
	}
	if t := c.TLS; t != nil {
		if (t.Cert == "") != (t.Key == "") {
			errs = append(errs, logagent.FieldErrorf("tls", "cert and key must be set together"))
		}
	}
	if s := c.SASL; s != nil {
		errs = append(errs, oneOf("sasl.mechanism", s.Mechanism, saslMechanism))
		if s.Username == "" {
			errs = append(errs, logagent.FieldErrorf("sasl.username", "must be set"))
		}
		switch {
		case s.Password != "" && s.PasswordFile != "":
			errs = append(errs, logagent.FieldErrorf("sasl", "set password or password_file, not both"))
		case s.Password == "" && s.PasswordFile == "":
			errs = append(errs, logagent.FieldErrorf("sasl", "password or password_file must be set"))
		}
	}
	return errors.Join(errs...)
}

func oneOf(field, v string, allowed []string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return logagent.FieldErrorf(field, "must be one of %s, got %q", strings.Join(allowed, ", "), v)
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("must be host:port, got %q", s)
	}
	if host == "" {
		return fmt.Errorf("host is empty in %q", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port must be 1-65535 in %q", s)
	}
	return nil
}

// checkTopic applies Kafka's rules for topic names, so that a bad name is
// refused here (or, for a category, per message) rather than failing every
// metadata request of a batch.
func checkTopic(t string) error {
	switch {
	case t == "":
		return errors.New("topic name is empty")
	case t == "." || t == "..":
		return fmt.Errorf("%q is not a valid topic name", t)
	case len(t) > 249:
		return fmt.Errorf("topic name is longer than 249 characters")
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("topic %q has a character other than ASCII letters, digits, '.', '_' and '-'", t)
		}
	}
	return nil
}

// password returns the SASL password, reading PasswordFile if set. The
// file's trailing newline is not part of the password.
func (s *SASLConfig) password() (string, error) {
	if s.PasswordFile == "" {
		return s.Password, nil
	}
	b, err := os.ReadFile(s.PasswordFile)
	if err != nil {
		// The *PathError names the file, never its content.
		return "", fmt.Errorf("sasl.password_file: %w", err)
	}
	p := strings.TrimRight(string(b), "\r\n")
	if p == "" {
		return "", fmt.Errorf("sasl.password_file: %s is empty", s.PasswordFile)
	}
	return p, nil
}

// tlsConfig reads the files named by t.
func (t *TLSConfig) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // an explicit, documented opt-in
		ServerName:         t.ServerName,
	}
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, fmt.Errorf("tls.ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca: no PEM certificate in %s", t.CA)
		}
		cfg.RootCAs = pool
	}
	if t.Cert != "" {
		cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("tls.cert, tls.key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
