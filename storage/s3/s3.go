// Package s3 stores value objects in an S3 bucket, such as one on MinIO.
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
)

const (
	// DefaultPartSize is the multipart part size, and so the memory one
	// upload of unknown size holds.
	DefaultPartSize = 16 << 20
	minPartSize     = 5 << 20 // S3's minimum
	maxPartSize     = 5 << 30 // S3's maximum

	// DefaultEndpoint is used when a storage URL names none.
	DefaultEndpoint = "s3.amazonaws.com"

	// A dead endpoint must fail fast: each request gets this many attempts,
	// each connection this long to be made.
	maxAttempts = 3
	dialTimeout = 2 * time.Second
)

var _ storage.Bucket = (*Bucket)(nil)

// Config says where the objects live.
type Config struct {
	Endpoint  string // host:port, without scheme
	Bucket    string
	Prefix    string // put before every object name; "" or ending in /
	AccessKey string
	SecretKey string
	Region    string // "" lets the client ask the server
	Secure    bool   // HTTPS
	PartSize  int64  // bytes per multipart part; 0 means DefaultPartSize
}

// Validate returns EINVALID naming the first bad field.
func (c Config) Validate() error {
	if err := checkEndpoint(c.Endpoint); err != nil {
		return err
	}
	if c.Bucket == "" {
		return kvflow.Errorf(kvflow.EINVALID, "S3 bucket cannot be empty.")
	}
	if err := s3utils.CheckValidBucketNameStrict(c.Bucket); err != nil {
		return kvflow.Errorf(kvflow.EINVALID, "S3 bucket %q is invalid: %v.", c.Bucket, strings.TrimSuffix(err.Error(), "."))
	}
	if c.Prefix != "" {
		if !strings.HasSuffix(c.Prefix, "/") {
			return kvflow.Errorf(kvflow.EINVALID, "S3 prefix %q must end with /.", c.Prefix)
		}
		if err := checkName("S3 prefix", strings.TrimSuffix(c.Prefix, "/")); err != nil {
			return err
		}
	}
	if (c.AccessKey == "") != (c.SecretKey == "") {
		return kvflow.Errorf(kvflow.EINVALID, "S3 access key and secret key go together: set both or neither.")
	}
	if c.PartSize != 0 && (c.PartSize < minPartSize || c.PartSize > maxPartSize) {
		return kvflow.Errorf(kvflow.EINVALID, "S3 part size %d is out of range; it must be between %d (5 MiB) and %d (5 GiB) bytes.", c.PartSize, minPartSize, maxPartSize)
	}
	return nil
}

// ParseURL reads s3://bucket/prefix?endpoint=host:port&secure=false&region=...
// &accessKey=...&secretKey=...&partSize=.... Credentials default to
// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, the endpoint to AWS, secure
// to true. Errors never quote the URL, which may hold a secret.
func ParseURL(raw string) (Config, error) {
	var c Config
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return c, kvflow.Errorf(kvflow.EINVALID, "Storage URL cannot be parsed: %v.", err)
	}
	if u.Scheme != "s3" {
		return c, kvflow.Errorf(kvflow.EINVALID, "Storage URL has scheme %q; expected s3://bucket/prefix?endpoint=host:port.", u.Scheme)
	}
	if u.User != nil {
		return c, kvflow.Errorf(kvflow.EINVALID, "Storage URL has credentials before the bucket; pass them as accessKey and secretKey parameters.")
	}
	if u.Opaque != "" || u.Host == "" {
		return c, kvflow.Errorf(kvflow.EINVALID, "Storage URL names no bucket; expected s3://bucket/prefix.")
	}
	c.Bucket = u.Host
	if p := strings.Trim(u.Path, "/"); p != "" {
		c.Prefix = p + "/"
	}
	c.Endpoint, c.Secure = DefaultEndpoint, true
	query, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return c, kvflow.Errorf(kvflow.EINVALID, "Storage URL parameters cannot be parsed: %v.", err)
	}
	for key, vals := range query {
		if len(vals) != 1 {
			return c, kvflow.Errorf(kvflow.EINVALID, "Parameter %q of the storage URL is given %d times; give it once.", key, len(vals))
		}
		v := vals[0]
		switch strings.ToLower(key) {
		case "endpoint":
			c.Endpoint = v
		case "secure":
			if c.Secure, err = strconv.ParseBool(v); err != nil {
				return c, kvflow.Errorf(kvflow.EINVALID, "Parameter secure of the storage URL must be true or false, not %q.", v)
			}
		case "region":
			c.Region = v
		case "accesskey":
			c.AccessKey = v
		case "secretkey":
			c.SecretKey = v
		case "partsize":
			if c.PartSize, err = strconv.ParseInt(v, 10, 64); err != nil {
				return c, kvflow.Errorf(kvflow.EINVALID, "Parameter partSize of the storage URL must be a number of bytes, not %q.", v)
			}
		default:
			return c, kvflow.Errorf(kvflow.EINVALID, "Parameter %q of the storage URL is unknown; expected endpoint, secure, region, accessKey, secretKey or partSize.", key)
		}
	}
	if c.AccessKey == "" && c.SecretKey == "" {
		c.AccessKey, c.SecretKey = os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	}
	return c, c.Validate()
}

func checkEndpoint(ep string) error {
	if ep == "" {
		return kvflow.Errorf(kvflow.EINVALID, "S3 endpoint cannot be empty; give host:port.")
	}
	if strings.Contains(ep, "://") || strings.ContainsAny(ep, "/?#@ ") {
		return kvflow.Errorf(kvflow.EINVALID, "S3 endpoint %q must be host or host:port, without scheme or path; use secure=false for plain HTTP.", ep)
	}
	if strings.Contains(ep, ":") {
		_, port, err := net.SplitHostPort(ep)
		if err != nil {
			return kvflow.Errorf(kvflow.EINVALID, "S3 endpoint %q is not host:port: %v.", ep, err)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return kvflow.Errorf(kvflow.EINVALID, "S3 endpoint %q has port %q; expected a number from 1 to 65535.", ep, port)
		}
	}
	return nil
}

// Bucket keeps each object under Prefix+name in one S3 bucket.
type Bucket struct {
	client *minio.Client
	core   minio.Core
	cfg    Config
}

// New connects to the store and creates the bucket if it is missing. It
// returns EUNAVAILABLE when the store cannot be reached.
func New(ctx context.Context, cfg Config) (*Bucket, error) {
	if cfg.PartSize == 0 {
		cfg.PartSize = DefaultPartSize
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tr, err := minio.DefaultTransport(cfg.Secure)
	if err != nil {
		return nil, fmt.Errorf("s3 transport: %w", err)
	}
	tr.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	tr.ResponseHeaderTimeout = 30 * time.Second
	tr.MaxIdleConnsPerHost = 64
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:      credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:     cfg.Secure,
		Region:     cfg.Region,
		Transport:  tr,
		MaxRetries: maxAttempts,
	})
	if err != nil {
		return nil, kvflow.Errorf(kvflow.EINVALID, "S3 endpoint %q cannot be used: %v.", cfg.Endpoint, err)
	}
	b := &Bucket{client: client, core: minio.Core{Client: client}, cfg: cfg}

	ok, err := client.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, b.fail(ctx, "check", "", err)
	}
	if !ok {
		err := client.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: cfg.Region})
		if code := errorCode(err); err != nil && code != "BucketAlreadyOwnedByYou" && code != "BucketAlreadyExists" {
			return nil, b.fail(ctx, "create", "", err)
		}
	}
	return b, nil
}

// Config returns the configuration, defaults filled in.
func (b *Bucket) Config() Config { return b.cfg }

// Put uploads r. With a size up to PartSize, or an unknown size whose data
// turns out to fit in one part, it is one PUT; larger values go in parts,
// holding one part in memory at a time.
func (b *Bucket) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if err := checkName("Object name", name); err != nil {
		return err
	}
	src := r
	var tr *trackReader
	if _, seekable := r.(io.Seeker); !seekable {
		// Seekable readers pass through: minio-go retries with them.
		tr = &trackReader{r: r}
		src = tr
	}
	if size < 0 {
		// Read up to one part: if the data ends there it goes as one PUT
		// instead of a three-request multipart upload.
		var head bytes.Buffer
		n, err := io.CopyN(&head, src, b.cfg.PartSize)
		switch {
		case err == io.EOF:
			src, size = bytes.NewReader(head.Bytes()), n
		case err != nil:
			return fmt.Errorf("read value for object %q: %w", name, err)
		default:
			src = io.MultiReader(&head, src)
		}
	}
	// Over plain HTTP minio-go would sign each chunk of the body (SHA-256 and
	// HMAC, checked again by the server); unsigned, it sends a CRC32C trailer
	// that the server checks instead: 1.1 to 1.4 times the uploads a second
	// here. Over HTTPS it sends that already. Reads check the value's SHA-256.
	_, err := b.client.PutObject(ctx, b.cfg.Bucket, b.cfg.Prefix+name, src, size, minio.PutObjectOptions{
		PartSize:             uint64(b.cfg.PartSize),
		NumThreads:           1,
		DisableContentSha256: true,
	})
	if err == nil {
		return nil
	}
	if tr != nil {
		if tr.err != nil {
			return fmt.Errorf("read value for object %q: %w", name, tr.err)
		}
		if tr.eof && size >= 0 && tr.n < size {
			return kvflow.Errorf(kvflow.EINVALID, "Object %q was announced as %d bytes but the value had %d.", name, size, tr.n)
		}
	}
	return b.fail(ctx, "write", name, err)
}

// Get opens the object, or a pack member's range of its pack. The reader
// reads from the network and lives as long as ctx.
func (b *Bucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	var opts minio.GetObjectOptions
	if pack, off, n, ok := storage.PackMember(name); ok { // a member is never empty
		name = pack
		if err := opts.SetRange(off, off+n-1); err != nil {
			return nil, err
		}
	}
	if err := checkName("Object name", name); err != nil {
		return nil, err
	}
	rc, _, _, err := b.core.GetObject(ctx, b.cfg.Bucket, b.cfg.Prefix+name, opts)
	if err != nil {
		return nil, b.fail(ctx, "read", name, err)
	}
	return &objectReader{ReadCloser: rc, ctx: ctx, b: b, name: name}, nil
}

// Delete removes the object; S3 reports no error for a missing one.
func (b *Bucket) Delete(ctx context.Context, name string) error {
	if err := checkName("Object name", name); err != nil {
		return err
	}
	err := b.client.RemoveObject(ctx, b.cfg.Bucket, b.cfg.Prefix+name, minio.RemoveObjectOptions{})
	if err != nil && errorCode(err) != "NoSuchKey" {
		return b.fail(ctx, "delete", name, err)
	}
	return nil
}

// Iter lists the objects under prefix, in key order.
func (b *Bucket) Iter(ctx context.Context, prefix string, fn func(name string, modified time.Time) error) error {
	if strings.HasPrefix(prefix, "/") {
		return kvflow.Errorf(kvflow.EINVALID, "Object prefix %q starts with /; prefixes are relative to the bucket.", kvflow.Clip(prefix))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	opts := minio.ListObjectsOptions{Prefix: b.cfg.Prefix + prefix, Recursive: true}
	for obj := range b.client.ListObjectsIter(ctx, b.cfg.Bucket, opts) {
		if obj.Err != nil {
			return b.fail(ctx, "list", prefix, obj.Err)
		}
		if strings.HasSuffix(obj.Key, "/") {
			continue // a folder marker, not a value
		}
		if err := fn(strings.TrimPrefix(obj.Key, b.cfg.Prefix), obj.LastModified); err != nil {
			return err
		}
	}
	return nil
}

// Ping checks the store answers and the bucket exists.
func (b *Bucket) Ping(ctx context.Context) error {
	ok, err := b.client.BucketExists(ctx, b.cfg.Bucket)
	if err != nil {
		return b.fail(ctx, "check", "", err)
	}
	if !ok {
		return kvflow.Errorf(kvflow.EUNAVAILABLE, "Bucket %q does not exist at the object store at %s.", b.cfg.Bucket, b.cfg.Endpoint)
	}
	return nil
}

// fail turns a minio-go error into a kvflow error: a missing object matches
// fs.ErrNotExist, a store that cannot be reached or refuses us is
// EUNAVAILABLE, anything else keeps its cause.
func (b *Bucket) fail(ctx context.Context, op, name string, err error) error {
	var kerr *kvflow.Error
	if errors.As(err, &kerr) {
		return err
	}
	what := fmt.Sprintf("%s object %q", op, kvflow.Clip(name))
	if name == "" {
		what = fmt.Sprintf("%s bucket %q", op, b.cfg.Bucket)
	}
	unavailable := func(format string, args ...any) error {
		return &kvflow.Error{Code: kvflow.EUNAVAILABLE, Message: fmt.Sprintf(format, args...), Err: err}
	}
	var resp minio.ErrorResponse
	if errors.As(err, &resp) && resp.Code != "" {
		switch resp.Code {
		case "NoSuchKey":
			return notFound(name)
		case "NoSuchBucket":
			return unavailable("Bucket %q does not exist at the object store at %s.", b.cfg.Bucket, b.cfg.Endpoint)
		case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken":
			return unavailable("Object store at %s refused to %s: %s", b.cfg.Endpoint, what, sentence(resp.Error()))
		}
		if resp.StatusCode >= 500 || resp.Code == "SlowDown" || resp.Code == "XMinioServerNotInitialized" {
			return unavailable("Object store at %s is unavailable: %s", b.cfg.Endpoint, sentence(resp.Error()))
		}
		return fmt.Errorf("%s at %s: %w", what, b.cfg.Endpoint, err)
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if isNetworkError(err) {
		cause := err
		var ue *url.Error
		if errors.As(err, &ue) {
			cause = ue.Err
		}
		return unavailable("Object store at %s is unreachable: %s", b.cfg.Endpoint, sentence(cause.Error()))
	}
	return fmt.Errorf("%s at %s: %w", what, b.cfg.Endpoint, err)
}

func isNetworkError(err error) bool {
	if minio.IsNetworkOrHostDown(err, false) {
		return true
	}
	var ne net.Error
	var ue *url.Error
	return errors.As(err, &ne) || errors.As(err, &ue) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

func errorCode(err error) string {
	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		return resp.Code
	}
	return ""
}

// notFound is the error for a missing object; it matches fs.ErrNotExist.
func notFound(name string) error {
	return &kvflow.Error{Code: kvflow.ENOTFOUND, Message: fmt.Sprintf("Object %q does not exist.", kvflow.Clip(name)), Err: iofs.ErrNotExist}
}

// checkName applies the same rule as the local directory backend, so names
// behave alike on both: relative, / separated, no empty, . or .. parts.
func checkName(what, name string) error {
	switch {
	case name == "":
		return kvflow.Errorf(kvflow.EINVALID, "%s cannot be empty.", what)
	case strings.HasPrefix(name, "/"):
		return kvflow.Errorf(kvflow.EINVALID, "%s %q starts with /; names are relative to the bucket.", what, kvflow.Clip(name))
	case strings.ContainsAny(name, "\\\x00"):
		return kvflow.Errorf(kvflow.EINVALID, "%s %q contains a backslash or a NUL byte; use / to separate parts.", what, kvflow.Clip(name))
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return kvflow.Errorf(kvflow.EINVALID, "%s %q has an empty, \".\" or \"..\" part between slashes.", what, kvflow.Clip(name))
		}
	}
	if err := s3utils.CheckValidObjectName(name); err != nil {
		return kvflow.Errorf(kvflow.EINVALID, "%s %q is invalid: %v.", what, kvflow.Clip(name), strings.TrimSuffix(err.Error(), "."))
	}
	return nil
}

// sentence ends s with a period.
func sentence(s string) string {
	s = strings.TrimSpace(s)
	if strings.HasSuffix(s, ".") {
		return s
	}
	return s + "."
}

// trackReader remembers how a caller's reader ended, to tell its failures
// from the store's.
type trackReader struct {
	r   io.Reader
	n   int64
	eof bool
	err error
}

func (t *trackReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.n += int64(n)
	if err == io.EOF {
		t.eof = true
	} else if err != nil {
		t.err = err
	}
	return n, err
}

// objectReader turns errors of a body being read into kvflow errors.
type objectReader struct {
	io.ReadCloser
	ctx  context.Context
	b    *Bucket
	name string
}

func (o *objectReader) Read(p []byte) (int, error) {
	n, err := o.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = o.b.fail(o.ctx, "read", o.name, err)
	}
	return n, err
}
