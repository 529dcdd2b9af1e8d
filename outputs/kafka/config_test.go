package kafka

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/logagent/logagent"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want []string // every FieldError, as "field: message"
	}{
		{"ok", func(c *Config) {}, nil},
		{"no brokers", func(c *Config) { c.Brokers = nil }, []string{"brokers: must list at least one host:port"}},
		{"bad broker", func(c *Config) { c.Brokers = []string{"a:9092", "b", ":9092", "c:0"} }, []string{
			`brokers[1]: must be host:port, got "b"`,
			`brokers[2]: host is empty in ":9092"`,
			`brokers[3]: port must be 1-65535 in "c:0"`,
		}},
		{"bad topic", func(c *Config) { c.Topic = "a/b" }, []string{`topic: topic "a/b" has a character other than ASCII letters, digits, '.', '_' and '-'`}},
		{"enums", func(c *Config) { c.Key, c.Compression, c.Acks = "uuid", "brotli", "2" }, []string{
			`key: must be one of none, host, path, got "uuid"`,
			`compression: must be one of none, gzip, snappy, lz4, zstd, got "brotli"`,
			`acks: must be one of all, one, none, got "2"`,
		}},
		{"timeout and size", func(c *Config) { c.Timeout = 0; c.MaxBytes = 0 }, []string{
			"timeout: must be positive, got 0s",
			"max_message_bytes: must be between 1 and 1GiB, got 0",
		}},
		{"tls half a pair", func(c *Config) { c.TLS = &TLSConfig{Cert: "c.pem"} }, []string{"tls: cert and key must be set together"}},
		{"sasl", func(c *Config) { c.SASL = &SASLConfig{Mechanism: "md5"} }, []string{
			`sasl.mechanism: must be one of plain, scram-sha-256, scram-sha-512, got "md5"`,
			"sasl.username: must be set",
			"sasl: password or password_file must be set",
		}},
		{"sasl both passwords", func(c *Config) {
			c.SASL = &SASLConfig{Mechanism: "plain", Username: "u", Password: "p", PasswordFile: "/f"}
		}, []string{"sasl: set password or password_file, not both"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Brokers = []string{"kafka1:9092"}
			tt.edit(&c)
			var got []string
			if err := c.Validate(); err != nil {
				for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
					var fe *logagent.FieldError
					if !errors.As(e, &fe) {
						t.Errorf("%v is not a *FieldError", e)
					}
					got = append(got, e.Error())
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Validate:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestDecodeYAML(t *testing.T) {
	const doc = `
brokers: [k1:9092, k2:9092]
topic: logs
key: host
compression: zstd
acks: one
auto_create_topic: true
timeout: 3s
max_message_bytes: 512KiB
tls: {ca: /etc/ca.pem, server_name: kafka.internal}
sasl: {mechanism: scram-sha-512, username: agent, password_file: /etc/pw}
`
	c := DefaultConfig()
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Timeout != 3*time.Second || c.MaxMessageBytes() != 512<<10 || c.Key != "host" || !c.AutoCreateTopic ||
		c.TLS.ServerName != "kafka.internal" || c.SASL.PasswordFile != "/etc/pw" || len(c.Brokers) != 2 {
		t.Fatalf("decoded %+v", c)
	}
	d := DefaultConfig()
	if d.MaxMessageBytes() != 1000000 || d.Timeout != 10*time.Second || d.Acks != "all" || d.Key != "none" || d.Compression != "none" || d.AutoCreateTopic {
		t.Fatalf("defaults %+v", d)
	}
}

func TestDescribe(t *testing.T) {
	c := DefaultConfig()
	c.Brokers = []string{"k1:9092", "k2:9092"}
	c.SASL = &SASLConfig{Mechanism: "plain", Username: "agent", Password: "hunter2"}
	c.TLS = &TLSConfig{}
	o, err := New("k", c, nil)
	if err != nil {
		t.Fatal(err)
	}
	const want = "brokers k1:9092, k2:9092 (acks all, compression none, key none, tls, sasl plain as agent)"
	if got := o.Describe(); got != want {
		t.Errorf("Describe() = %q, want %q", got, want)
	}
	tests := []struct {
		topic, category, want string
	}{
		{"", "nginx", "topic nginx"},
		{"all", "nginx", "topic all"},
		{"", "", `topic "" (undeliverable: topic name is empty)`},
	}
	for _, tt := range tests {
		c.Topic = tt.topic
		o, _ := New("k", c, nil)
		m := &logagent.Message{Source: &logagent.Source{Category: tt.category}}
		if got := o.Destination(m); got != tt.want {
			t.Errorf("Destination(topic %q, category %q) = %q, want %q", tt.topic, tt.category, got, tt.want)
		}
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		brokers []string
		sasl    *SASLConfig
		wantErr string
	}{
		{[]string{"127.0.0.1:9092", "localhost:9092"}, nil, ""},
		{[]string{"no-such-host.invalid:9092"}, nil, "no-such-host.invalid"},
		{[]string{"127.0.0.1:9092"}, &SASLConfig{Mechanism: "plain", Username: "u", PasswordFile: "/nonexistent/pw"}, "sasl.password_file"},
	}
	for _, tt := range tests {
		c := DefaultConfig()
		c.Brokers, c.SASL = tt.brokers, tt.sasl
		o, err := New("k", c, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = o.Check(context.Background())
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("Check(%v) = %v, want error containing %q", tt.brokers, err, tt.wantErr)
		}
	}
}
