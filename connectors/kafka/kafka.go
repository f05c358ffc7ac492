// Package kafka provides the kafka input and output, built on franz-go
// (github.com/twmb/franz-go/pkg/kgo).
//
// Input (input_kafka.go), at-least-once:
//   - A record counts as done only once the batch that carried it, and every
//     batch read before that batch, has been acknowledged. With a consumer
//     group the input commits exactly that acknowledged prefix (marked
//     offsets, committed every commit_period, when partitions are revoked,
//     and synchronously in Close); without one it keeps the prefix in memory.
//   - A negative acknowledgement (an AckFunc called with an error) stops the
//     prefix at that batch, and the next Read returns ErrNotConnected: the
//     engine calls Connect, which closes the client and starts a new one at
//     the acknowledged prefix, so the failed batch and everything read after
//     it are delivered again.
//   - Every batch carries a position (Batch.Pos): a JSON object of the next
//     offset of every partition read so far, topic -> partition -> offset
//     ({"orders":{"0":42,"1":17}}). Seek(pos) before Connect resumes exactly
//     there. Without a group the input assigns every partition of its topics
//     itself and resolves the starting offsets to numbers at Connect, so the
//     position names every partition and a resume neither skips nor repeats.
//   - With a group and group_membership: false (checkpointed exactly-once
//     pipelines) the input also assigns every partition itself and never
//     joins the group: no rebalance, and a restarted process is never
//     blocked by a dead member. It starts at the Seek position, else at the
//     group's committed offsets, else per start_from_latest, and commits the
//     group's offsets only from CommitCheckpoint, which the checkpoint
//     coordinator calls with the position of each completed checkpoint (for
//     lag tools). Partitions added to a topic are picked up at the next
//     Connect (restart or reconnect). See assign.go.
//   - read_committed isolation is the default: records of aborted (and still
//     open) transactions, such as an upstream exactly-once weir's, are never
//     read.
//
// Output (output_kafka.go): one Produce per row, Write returns once Kafka has
// acknowledged every record of the batch (or the first error). Without
// exactly_once it is at-least-once: a batch written again after a failure
// or a restart is written twice.
//
// Exactly-once output (exactly_once: true, output_kafka_txn.go) implements
// component.Committer with one Kafka transaction per checkpoint epoch:
//   - Transactions. Records after barrier N keep flowing while transaction
//     N waits for checkpoint N to complete, and a producer has one open
//     transaction at a time, so the output keeps a pool of transactional
//     producers, with transactional ids BASE-0, BASE-1, ... (BASE:
//     transactional_id, default weir-STREAM-TOPIC). Three suffice while
//     checkpoints complete. The first Write of an epoch begins a
//     transaction on a free producer; an epoch without records begins
//     none.
//   - PreCommit(N) flushes the epoch's transaction (every produce result
//     is back; an error fails the checkpoint) and returns the handle the
//     manifest stores: the JSON {v, base, pool, txns}, where txns lists
//     every transaction pre-committed and not yet committed, oldest first,
//     each with its checkpoint, transactional id, producer id, producer
//     epoch and start time (no txns when nothing is pending). Later Writes
//     begin epoch N+1 on another producer.
//   - Failed checkpoints. The engine never aborts the epoch of a failed
//     checkpoint: it stays pre-committed, and the handle of the next
//     PreCommit names it too. Commit(N) commits every pre-committed epoch
//     up to N, oldest first, from the coordinator's goroutine while the
//     sink writes epoch N+1 on another producer; an epoch committed before
//     is skipped, so a repeated Commit is a success. Each pending epoch
//     holds its producer, so the pool grows (BASE-3, BASE-4, ...) instead
//     of making a Write wait for a free one: the barrier that could free
//     one reaches the output only after that Write returns. A PreCommit
//     that would leave more than 16 epochs pending fails the stream
//     (ErrCheckpointsFailing, fatal), which bounds the pool at 33 ids; the
//     coordinator stops the stream sooner unless tolerable_failed_checkpoints
//     is above 14. Abort(N), for library users, discards the epochs up to N
//     (the open one when its barrier arrives).
//   - Transaction timeout. The broker aborts a transaction
//     transactional_timeout after its first record, and a run of failed
//     checkpoints keeps the oldest pending one waiting. PreCommit refuses
//     (ErrCheckpointsFailing, fatal) when the oldest transaction its handle
//     would name began more than transactional_timeout minus a margin
//     (60s, or a quarter of the timeout if shorter) ago: the checkpoint
//     gets no manifest, and the restarted stream recovers the last complete
//     checkpoint and reads those epochs' records again. Should the broker
//     still abort a transaction before Commit reaches it (the checkpoint
//     took longer than the margin), Commit fails with ErrTransactionLost
//     (fatal): that transaction's records are lost, and so does the
//     recovery from that checkpoint, rather than carry on silently.
//   - Recover(N, handle), before Connect in a new process, re-commits the
//     transactions the handle lists, oldest first, with raw EndTxn requests
//     (transactional id, producer id and epoch from the handle) sent by a
//     plain client, and only then initializes the pool: InitProducerID on
//     each transactional id aborts the transactions the crashed run left
//     open (epochs after N) and fences an older instance still running
//     (its next Write or Commit fails with ErrFenced). The ids initialized
//     are the pool's own, those of the pool the handle names (its base and
//     size), and those above that size the broker knows
//     (DescribeTransactions): the old pool may have grown after checkpoint N.
//   - Never twice under one producer id and epoch. Before KIP-890 brokers
//     keep the producer epoch across the transactions of a producer, and a
//     re-commit of handle N by recovery would commit whatever transaction
//     is open under that id and epoch at the time. So a producer begins no
//     transaction while a checkpoint that recovery may restore names its
//     last one (its slot is free only once a later checkpoint has a
//     manifest; a Commit that commits several epochs holds all their
//     producers), and it is re-initialized (new epoch) after each commit
//     and abort when the broker did not bump the epoch itself.
//   - Which re-commit answers are a success: none (committed now), or a
//     repeated commit. INVALID_TXN_STATE means the transaction was aborted:
//     Recover fails with ErrTransactionLost. PRODUCER_FENCED or
//     INVALID_PRODUCER_EPOCH means the producer's epoch moved on after the
//     transaction ended; by the rules above that happens after a commit
//     (the old run's Commit, or an earlier recovery that then initialized
//     the pool), or when the broker aborted it at its transaction timeout.
//     Recover asks the broker (DescribeTransactions) and fails with
//     ErrTransactionLost when it reports the abort; the timeout case is
//     otherwise excluded by configuration and by PreCommit's check:
//     transactional_timeout must be larger than checkpoint interval +
//     checkpoint timeout + restart time (60s), checked by
//     CheckTransactionTimeout. In a running instance the same answers mean
//     another instance took over (ErrFenced), or ErrTransactionLost when
//     the transaction is older than transactional_timeout.
//   - A failed record (or a cancelled Write) inside a transaction cannot
//     be repaired without losing or duplicating records: Write and
//     PreCommit return ErrTransactionFailed from then on, and the stream
//     must restart from its last checkpoint.
//   - Readers see the records at Commit when they read with isolation
//     level read_committed (the kafka input's default).
package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/weir-stream/weir/component"
)

// Fields shared by the input and the output.
const (
	fieldBrokers  = "brokers"
	fieldClientID = "client_id"
	fieldTLS      = "tls"
	fieldSASL     = "sasl"

	fieldTLSEnabled    = "enabled"
	fieldTLSSkipVerify = "skip_verify"
	fieldTLSCAFile     = "ca_file"
	fieldTLSCertFile   = "cert_file"
	fieldTLSKeyFile    = "key_file"

	fieldSASLMechanism = "mechanism"
	fieldSASLUsername  = "username"
	fieldSASLPassword  = "password"
)

// SASL mechanisms.
const (
	saslNone        = "none"
	saslPlain       = "PLAIN"
	saslScramSHA256 = "SCRAM-SHA-256"
	saslScramSHA512 = "SCRAM-SHA-512"
)

const defaultClientID = "weir"

// materialize is the default of an object field that exists, with its
// fields' defaults, even when absent from the file.
var materialize = map[string]any{}

func brokersField() component.Field {
	return component.Field{Name: fieldBrokers, Type: component.TypeList, Elem: component.TypeString, Required: true,
		Description: "seed brokers, host:port"}
}

func clientIDField() component.Field {
	return component.Field{Name: fieldClientID, Type: component.TypeString, Default: defaultClientID, Advanced: true,
		Description: "client id sent to the brokers (shows in their logs and quotas)"}
}

func tlsField() component.Field {
	return component.Field{
		Name: fieldTLS, Type: component.TypeObject, Default: materialize,
		Description: "TLS to the brokers",
		Fields: []component.Field{
			{Name: fieldTLSEnabled, Type: component.TypeBool, Default: false,
				Description: "connect with TLS"},
			{Name: fieldTLSSkipVerify, Type: component.TypeBool, Default: false,
				Description: "do not verify the brokers' certificates (testing only)"},
			{Name: fieldTLSCAFile, Type: component.TypeString,
				Description: "PEM file of the CA certificates that sign the brokers' certificates; empty: the system roots"},
			{Name: fieldTLSCertFile, Type: component.TypeString,
				Description: "PEM client certificate (mutual TLS); set with key_file"},
			{Name: fieldTLSKeyFile, Type: component.TypeString,
				Description: "PEM private key of cert_file"},
		},
	}
}

func saslField() component.Field {
	return component.Field{
		Name: fieldSASL, Type: component.TypeObject, Default: materialize,
		Description: "SASL authentication",
		Fields: []component.Field{
			{Name: fieldSASLMechanism, Type: component.TypeString, Default: saslNone,
				Options:     []string{saslNone, saslPlain, saslScramSHA256, saslScramSHA512},
				Description: "SASL mechanism; none disables SASL"},
			{Name: fieldSASLUsername, Type: component.TypeString,
				Description: "user name; required unless mechanism is none"},
			{Name: fieldSASLPassword, Type: component.TypeString,
				Description: "password"},
		},
	}
}

// clientConf is the configuration both the input and the output pass to
// kgo: brokers, client id, TLS and SASL.
type clientConf struct {
	brokers  []string
	clientID string

	tls           bool
	tlsSkipVerify bool
	tlsCAFile     string
	tlsCertFile   string
	tlsKeyFile    string

	saslMechanism string
	saslUser      string
	saslPass      string
}

// parseClientConf reads and checks the shared fields; it does no I/O (the
// TLS files are read in Connect).
func parseClientConf(conf *component.Config) (clientConf, error) {
	c := clientConf{brokers: splitBrokers(conf.StringList(fieldBrokers)), clientID: conf.String(fieldClientID)}
	if c.clientID == "" {
		c.clientID = defaultClientID
	}
	if len(c.brokers) == 0 {
		return c, conf.Errorf(fieldBrokers, "at least one broker is required")
	}
	for _, b := range c.brokers {
		if strings.TrimSpace(b) == "" {
			return c, conf.Errorf(fieldBrokers, "empty broker address")
		}
	}
	if t := conf.Object(fieldTLS); t != nil {
		c.tls = t.Bool(fieldTLSEnabled)
		c.tlsSkipVerify = t.Bool(fieldTLSSkipVerify)
		c.tlsCAFile = t.String(fieldTLSCAFile)
		c.tlsCertFile = t.String(fieldTLSCertFile)
		c.tlsKeyFile = t.String(fieldTLSKeyFile)
		if (c.tlsCertFile == "") != (c.tlsKeyFile == "") {
			return c, t.Errorf(fieldTLSCertFile, "cert_file and key_file must be set together")
		}
		if !c.tls && (c.tlsSkipVerify || c.tlsCAFile != "" || c.tlsCertFile != "") {
			return c, t.Errorf(fieldTLSEnabled, "TLS settings are given but enabled is false")
		}
	}
	c.saslMechanism = saslNone
	if s := conf.Object(fieldSASL); s != nil {
		if m := s.String(fieldSASLMechanism); m != "" {
			c.saslMechanism = m
		}
		c.saslUser = s.String(fieldSASLUsername)
		c.saslPass = s.String(fieldSASLPassword)
		switch c.saslMechanism {
		case saslNone:
		case saslPlain, saslScramSHA256, saslScramSHA512:
			if c.saslUser == "" {
				return c, s.Errorf(fieldSASLUsername, "required with mechanism %s", c.saslMechanism)
			}
		default:
			return c, s.Errorf(fieldSASLMechanism, "unknown mechanism %q (want none, PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", c.saslMechanism)
		}
	}
	return c, nil
}

// brokerList names the brokers in errors.
func (c *clientConf) brokerList() string { return strings.Join(c.brokers, ",") }

// opts returns the kgo options for brokers, client id, TLS, SASL and logs.
// It reads the TLS files.
func (c *clientConf) opts(log *slog.Logger) ([]kgo.Opt, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.brokers...),
		kgo.ClientID(c.clientID),
		kgo.WithLogger(kgoLogger{log}),
	}
	if c.tls {
		tc, err := c.tlsConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if m := c.saslMech(); m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

func (c *clientConf) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.tlsSkipVerify}
	if c.tlsCAFile != "" {
		pem, err := os.ReadFile(c.tlsCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls ca_file %s: no PEM certificate found", c.tlsCAFile)
		}
		tc.RootCAs = pool
	}
	if c.tlsCertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.tlsCertFile, c.tlsKeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls cert_file/key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func (c *clientConf) saslMech() sasl.Mechanism {
	switch c.saslMechanism {
	case saslPlain:
		return plain.Auth{User: c.saslUser, Pass: c.saslPass}.AsMechanism()
	case saslScramSHA256:
		return scram.Auth{User: c.saslUser, Pass: c.saslPass}.AsSha256Mechanism()
	case saslScramSHA512:
		return scram.Auth{User: c.saslUser, Pass: c.saslPass}.AsSha512Mechanism()
	}
	return nil
}

// newClient creates a kgo client whose requests are all aborted when the
// returned cancel is called (kgo.WithContext), so that Close can be bounded
// by a context even when the brokers do not answer.
func newClient(opts []kgo.Opt) (*kgo.Client, context.CancelFunc, error) {
	ctx, cancel := context.WithCancel(context.Background())
	cl, err := kgo.NewClient(append(opts, kgo.WithContext(ctx))...)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	return cl, cancel, nil
}

// closeClient closes cl; if ctx ends first, cancel aborts what cl still
// waits for (leaving the group, flushing), so this returns soon after.
func closeClient(ctx context.Context, cl *kgo.Client, cancel context.CancelFunc) {
	stop := context.AfterFunc(ctx, cancel)
	cl.Close()
	stop()
	cancel()
}

// kgoLogger passes franz-go's log lines to slog: its warnings and errors
// always, its info lines as debug when debug is enabled.
type kgoLogger struct{ l *slog.Logger }

func (k kgoLogger) Level() kgo.LogLevel {
	if k.l.Enabled(context.Background(), slog.LevelDebug) {
		return kgo.LogLevelInfo
	}
	return kgo.LogLevelWarn
}

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	l := slog.LevelDebug
	switch level {
	case kgo.LogLevelError:
		l = slog.LevelError
	case kgo.LogLevelWarn:
		l = slog.LevelWarn
	}
	k.l.Log(context.Background(), l, "kafka client: "+msg, keyvals...)
}

func loggerOf(res component.Resources) *slog.Logger {
	if res.Logger != nil {
		return res.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// splitBrokers accepts "a:9092,b:9092" entries too, so one environment
// variable can name several brokers: brokers: ["${KAFKA_BROKERS}"].
func splitBrokers(list []string) []string {
	var out []string
	for _, e := range list {
		for _, b := range strings.Split(e, ",") {
			if b = strings.TrimSpace(b); b != "" {
				out = append(out, b)
			}
		}
	}
	return out
}
