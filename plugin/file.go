package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"path"
	"strings"

	"github.com/kvflow/kvflow"
	"github.com/kvflow/kvflow/storage"
)

// FileScheme starts the URI of a file a task stored: kestra:///<object>.
const FileScheme = "kestra:///"

// ExecutionPrefix is where the objects of one execution live in the Bucket:
// _executions/<namespace with . as />/<flowId>/<executionId>/.
func ExecutionPrefix(ns, flowID, executionID string) string {
	return "_executions/" + strings.ReplaceAll(ns, ".", "/") + "/" + flowID + "/" + executionID + "/"
}

// PutFile stores the bytes of r as a file of this task run, under the
// execution's prefix in the Bucket, and returns its kestra:/// URI, which
// OpenFile reads back. name is reduced to a safe base name.
func (rc *RunContext) PutFile(ctx context.Context, name string, r io.Reader) (string, error) {
	if rc.Bucket == nil {
		return "", kvflow.Errorf(kvflow.EUNAVAILABLE, "Task '%s' cannot store file %q: no object store is configured.", rc.TaskID, name)
	}
	obj := ExecutionPrefix(rc.Namespace, rc.FlowID, rc.ExecutionID) + "files/" + rc.TaskRunID + "/" + safeName(name)
	if err := rc.Bucket.Put(ctx, obj, r, -1); err != nil {
		if kvflow.ErrorCode(err) == kvflow.EINTERNAL {
			return "", &kvflow.Error{Code: kvflow.EUNAVAILABLE, Message: fmt.Sprintf("Task '%s' cannot store file %q: %v.", rc.TaskID, name, err), Err: err}
		}
		return "", err
	}
	return FileScheme + obj, nil
}

// OpenFile opens a file stored by PutFile, by its URI.
func (rc *RunContext) OpenFile(ctx context.Context, uri string) (io.ReadCloser, error) {
	return OpenFile(ctx, rc.Bucket, uri)
}

// OpenFile opens the object a kestra:/// URI names in bucket. Only files
// under _executions/ can be opened this way.
func OpenFile(ctx context.Context, bucket storage.Bucket, uri string) (io.ReadCloser, error) {
	obj, ok := strings.CutPrefix(uri, FileScheme)
	if !ok || !strings.HasPrefix(obj, "_executions/") || strings.Contains("/"+obj+"/", "/../") {
		return nil, kvflow.Errorf(kvflow.EINVALID, "%q is not the URI of a file stored by a task (kestra:///_executions/...).", uri)
	}
	if bucket == nil {
		return nil, kvflow.Errorf(kvflow.EUNAVAILABLE, "Cannot open %s: no object store is configured.", uri)
	}
	rc, err := bucket.Get(ctx, obj)
	if err != nil {
		if isNotExist(err) {
			return nil, kvflow.Errorf(kvflow.ENOTFOUND, "File %s does not exist.", uri)
		}
		return nil, err
	}
	return rc, nil
}

// safeName keeps the base name of a file, with characters other than
// letters, digits, '.', '-' and '_' replaced by '_'.
func safeName(name string) string {
	name = path.Base(strings.ReplaceAll(name, "\\", "/"))
	b := []byte(name)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	name = strings.TrimLeft(string(b), ".")
	if name == "" || name == "_" {
		name = "file"
	}
	if len(name) > 200 {
		name = name[len(name)-200:]
	}
	return name
}

func isNotExist(err error) bool { return errors.Is(err, iofs.ErrNotExist) }
