package tenancy

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/prom-tenant/caddy-prom-tenant/tenancy/v1alpha1"
)

// DefaultReloadInterval is how often a DirectorySource polls by default.
const DefaultReloadInterval = time.Second

// DefaultEmptyFileGrace is how long a DirectorySource keeps the objects of
// a manifest file found empty, by default.
const DefaultEmptyFileGrace = 10 * time.Second

// sourceDirectory names the directory source among the sources of a tenantSet.
const sourceDirectory = "directory"

const (
	// maxManifestBytes bounds the size of one manifest file: the size of a
	// Kubernetes ConfigMap, the usual way to mount them, so any file from
	// one fits. Parsing YAML costs far more than its size (8 MiB of
	// manifests took 3 s of CPU and 550 MB of allocations per read); the
	// pattern caps bound the compile, this bounds the parse.
	maxManifestBytes = 1 << 20
	// racyWindow: a file whose mtime is this close to the time it was read
	// may have changed again without changing mtime (coarse timestamps), so
	// it is re-read and hashed until its mtime is older than that.
	racyWindow = 2 * time.Second
)

// DirectorySource loads MetricAccess manifests from a directory and reloads
// them when they change.
//
// Every *.yaml and *.yml file directly in the directory is read (not
// recursively; hidden files are skipped; symlinks are followed, so a mounted
// Kubernetes ConfigMap works). A file may hold several YAML documents.
// Unknown fields are errors. A file is atomic: if any document in it fails
// to parse or validate, the whole file keeps its last good version (or
// contributes nothing if it never had one) and the error is logged. If two
// files define the same namespace/name, the lexically first file wins.
//
// A file that held objects and is found empty (no bytes, or no document
// with content) keeps them for EmptyFileGrace: a tool that rewrites a file
// in place truncates it first, and a scan between the truncation and the
// write would otherwise revoke its tenants' access. The file is listed as
// rejected meanwhile, with a warning. An edit that leaves fewer objects, or
// fewer patterns, is never held: only the empty file, which cannot be told
// from one being written, waits. A deleted file's objects go at once.
type DirectorySource struct {
	// Path of the directory. Required; it must exist when the config loads.
	Path string `json:"path"`

	// ReloadInterval is how often the directory is checked for changes.
	// Default: 1s.
	ReloadInterval caddy.Duration `json:"reload_interval,omitempty"`

	// EmptyFileGrace is how long a file that held objects and is found
	// empty keeps them; if it is still empty then, they are removed. Write
	// manifests atomically (a temporary file in the same directory, then a
	// rename, as kubectl and ConfigMap mounts do) and no file is ever seen
	// empty; delete a file to remove its objects at once. Default: 10s.
	EmptyFileGrace caddy.Duration `json:"empty_file_grace,omitempty"`

	now     func() time.Time // time.Now; tests set it
	logger  *zap.Logger
	tenants *tenantSet

	mu        sync.Mutex            // serializes scans; guards the fields below
	files     map[string]*fileState // by file path
	conflicts map[string][]error    // by file path, from the last rebuild: duplicates
	nsFiles   map[string][]string   // by namespace, the files defining its objects, from the last rebuild
	dirErr    string                // last error listing the directory

	errs atomic.Pointer[map[string]error] // published per-file errors
	held atomic.Int32                     // published count of files held empty
}

// emptyFileHolds counts, over the process, the times a file that held
// objects was found empty and its objects were kept.
var emptyFileHolds atomic.Uint64

// fileState is what is known about one manifest file.
type fileState struct {
	modTime time.Time
	size    int64
	readAt  time.Time // when the content was last read, before reading
	hash    [sha256.Size]byte

	good    []*v1alpha1.MetricAccess // last good version
	hasGood bool
	err     error // error of the current content; nil if it is good

	// emptySince is when the file was found empty while its good version
	// had objects, which it keeps until EmptyFileGrace has passed; zero
	// when it is not held so.
	emptySince time.Time
}

// unchanged reports whether fi certainly describes the content last read.
func (f *fileState) unchanged(fi fs.FileInfo) bool {
	return fi.Size() == f.size && fi.ModTime().Equal(f.modTime) &&
		f.modTime.Before(f.readAt.Add(-racyWindow))
}

// provision checks the directory, applies defaults and loads it once.
// prev is the directory source of the config being replaced, if any: the
// files it holds empty stay held (a reload must not end the grace early).
func (d *DirectorySource) provision(logger *zap.Logger, tenants *tenantSet, prev *DirectorySource) error {
	if d.Path == "" {
		return errors.New("directory: path is required")
	}
	if d.ReloadInterval == 0 {
		d.ReloadInterval = caddy.Duration(DefaultReloadInterval)
	}
	if d.EmptyFileGrace == 0 {
		d.EmptyFileGrace = caddy.Duration(DefaultEmptyFileGrace)
	}
	if d.EmptyFileGrace < 0 {
		return fmt.Errorf("directory: empty_file_grace must not be negative, got %s", time.Duration(d.EmptyFileGrace))
	}
	if d.now == nil {
		d.now = time.Now
	}
	fi, err := os.Stat(d.Path)
	if err != nil {
		return fmt.Errorf("directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("directory: %s is not a directory", d.Path)
	}
	d.logger, d.tenants = logger, tenants
	d.files = map[string]*fileState{}
	if prev != nil && prev != d && prev.Path == d.Path {
		prev.mu.Lock()
		for path, st := range prev.files {
			if !st.emptySince.IsZero() {
				held := *st
				d.files[path] = &held
			}
		}
		prev.mu.Unlock()
	}
	carried := len(d.files) > 0
	// A namespace's compile finishing may reject its files (it allows
	// nothing); they say so once it has.
	tenants.onCompiled(func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.publishErrors()
	})
	if !d.scan() && carried {
		// Only held files, unchanged: their objects are this config's too.
		d.mu.Lock()
		d.rebuild()
		d.publishErrors()
		d.mu.Unlock()
	}
	return nil
}

// Errors returns, for each manifest file with a problem, the problem: the
// reason its current content was rejected, or a conflict with another file.
// Files without problems are absent.
func (d *DirectorySource) Errors() map[string]error {
	if p := d.errs.Load(); p != nil {
		return maps.Clone(*p)
	}
	return map[string]error{}
}

// run polls the directory every ReloadInterval until ctx is done.
func (d *DirectorySource) run(ctx context.Context) {
	t := time.NewTicker(time.Duration(d.ReloadInterval))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.scan()
		}
	}
}

// list returns the names of the manifest files of the directory, sorted.
func (d *DirectorySource) list() ([]string, error) {
	entries, err := os.ReadDir(d.Path)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, ".") {
			continue
		}
		if ext := filepath.Ext(n); ext == ".yaml" || ext == ".yml" {
			names = append(names, n)
		}
	}
	return names, nil // os.ReadDir sorts by name
}

// scan brings the registry up to date with the directory. It reports
// whether the registry was rebuilt.
func (d *DirectorySource) scan() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	defer d.publishErrors()

	names, err := d.list()
	if err != nil {
		// Keep every tenant: a transient failure must not revoke access.
		if err.Error() != d.dirErr {
			d.logger.Error("cannot list MetricAccess directory; keeping current tenants",
				zap.String("directory", d.Path), zap.Error(err))
			d.dirErr = err.Error()
		}
		return false
	}
	d.dirErr = ""

	changed := false
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		path := filepath.Join(d.Path, n)
		present, fileChanged := d.check(path)
		seen[path] = present
		changed = changed || fileChanged
	}
	for path, st := range d.files {
		if seen[path] {
			continue
		}
		delete(d.files, path)
		d.logger.Info("MetricAccess file removed", zap.String("file", path))
		changed = changed || st.hasGood
	}
	if changed {
		d.rebuild()
	}
	return changed
}

// check loads path if it changed. It reports whether the file exists as a
// regular file, and whether its good version changed.
func (d *DirectorySource) check(path string) (present, changed bool) {
	fi, err := os.Stat(path) // follows symlinks
	if errors.Is(err, fs.ErrNotExist) || (err == nil && fi.IsDir()) {
		// Gone, a dangling symlink or a directory: treated as deleted.
		return false, false
	}
	st := d.files[path]
	if st == nil {
		st = &fileState{size: -1}
		d.files[path] = st
	}
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s: not a regular file", path)
	}
	if err == nil && fi.Size() > maxManifestBytes {
		err = errManifestSize(path, fi.Size())
	}
	if err != nil {
		d.fail(path, st, err)
		st.size = -1 // retry next time
		return true, false
	}
	if st.unchanged(fi) {
		return true, d.expireHold(path, st)
	}
	readAt := d.now()
	data, err := readManifest(path)
	if err != nil {
		d.fail(path, st, err)
		st.size = -1
		return true, false
	}
	hash := sha256.Sum256(data)
	sameContent := st.size >= 0 && hash == st.hash
	st.modTime, st.size, st.readAt, st.hash = fi.ModTime(), fi.Size(), readAt, hash
	if sameContent {
		return true, d.expireHold(path, st)
	}
	heldSince := st.emptySince
	held := !heldSince.IsZero()
	st.emptySince = time.Time{}
	objs, err := parseManifests(path, data)
	if err != nil {
		d.fail(path, st, err)
		return true, false
	}
	if len(objs) == 0 && len(st.good) > 0 {
		// Empty again in other words (a comment added): the grace runs
		// from the first time it was found empty, never longer.
		if !held {
			heldSince = readAt
		}
		d.hold(path, st, heldSince, !held)
		return true, false
	}
	st.good, st.hasGood, st.err = objs, true, nil
	if held {
		d.logger.Info("MetricAccess file written again within empty_file_grace", zap.String("file", path), zap.Int("objects", len(objs)))
	} else {
		d.logger.Info("loaded MetricAccess file", zap.String("file", path), zap.Int("objects", len(objs)))
	}
	return true, true
}

// hold keeps the objects of a file found empty since then for
// EmptyFileGrace, and says so: the file's error (the admin API's files, the
// rejected metric) and, when it is new, a warning and a count
// (prometheus_proxy_metricaccess_empty_file_holds_total).
func (d *DirectorySource) hold(path string, st *fileState, since time.Time, isNew bool) {
	st.emptySince = since
	grace := time.Duration(d.EmptyFileGrace)
	st.err = fmt.Errorf("%s: file is empty; its %d MetricAccess objects stay in force until %s (empty_file_grace %s), "+
		"in case it is being rewritten: write manifest files atomically (a temporary file, then a rename), and delete a file to remove its objects at once",
		path, len(st.good), since.Add(grace).UTC().Format(time.RFC3339), grace)
	if !isNew {
		return
	}
	emptyFileHolds.Add(1)
	d.logger.Warn("MetricAccess file is empty; keeping its objects for empty_file_grace",
		zap.String("file", path), zap.Int("objects", len(st.good)), zap.Duration("empty_file_grace", grace))
}

// expireHold removes the objects of a file held empty once EmptyFileGrace
// has passed, and reports whether it did.
func (d *DirectorySource) expireHold(path string, st *fileState) bool {
	if st.emptySince.IsZero() || d.now().Sub(st.emptySince) < time.Duration(d.EmptyFileGrace) {
		return false
	}
	d.logger.Warn("MetricAccess file stayed empty past empty_file_grace; its objects are removed",
		zap.String("file", path), zap.Int("objects", len(st.good)))
	st.good, st.err, st.emptySince = nil, nil, time.Time{}
	return true
}

// Held returns how many manifest files are found empty and keep their
// objects for EmptyFileGrace.
func (d *DirectorySource) Held() int {
	return int(d.held.Load())
}

func errManifestSize(path string, size int64) error {
	return fmt.Errorf("%s: file is %d bytes, at most %d (1 MiB) allowed: split its objects over several files", path, size, maxManifestBytes)
}

// readManifest reads path, failing when it holds more than
// maxManifestBytes: it may have grown since it was stat'ed.
func readManifest(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxManifestBytes+1))
	if err == nil && len(data) > maxManifestBytes {
		err = errManifestSize(path, int64(len(data)))
	}
	return data, err
}

// fail records err as the file's current problem, logging it once.
func (d *DirectorySource) fail(path string, st *fileState, err error) {
	if st.err != nil && st.err.Error() == err.Error() {
		st.err = err
		return
	}
	st.err = err
	msg := "invalid MetricAccess file; it contributes nothing"
	if st.hasGood {
		msg = "invalid MetricAccess file; keeping its last good version"
	}
	d.logger.Error(msg, zap.String("file", path), zap.Error(err))
}

// rebuild compiles the tenants from the good versions of all files and
// publishes them.
func (d *DirectorySource) rebuild() {
	d.conflicts = map[string][]error{}
	owner := map[string]string{} // object key -> file
	var objs []sourcedObject
	files := map[string][]string{} // namespace -> files
	for _, path := range slices.Sorted(maps.Keys(d.files)) {
		for _, o := range d.files[path].good {
			key := o.Key()
			if first, dup := owner[key]; dup {
				err := fmt.Errorf("%s: %s is also defined in %s, which wins", path, key, first)
				d.logger.Error("duplicate MetricAccess; keeping the one from the lexically first file",
					zap.String("object", key), zap.String("file", first), zap.String("duplicate_file", path))
				d.conflicts[path] = append(d.conflicts[path], err)
				continue
			}
			owner[key] = path
			objs = append(objs, sourcedObject{obj: o, ref: ObjectRef{Name: o.Name, Source: path}})
			if !slices.Contains(files[o.Namespace], path) {
				files[o.Namespace] = append(files[o.Namespace], path)
			}
		}
	}
	res := d.tenants.publish(sourceDirectory, objs)
	for key, err := range res.dupErrs {
		d.conflicts[owner[key]] = append(d.conflicts[owner[key]], err)
	}
	d.nsFiles = files
}

// publishErrors publishes the current per-file errors for Errors: the
// file's own, its duplicates, and those of the namespaces it defines objects
// of (too many patterns, or allowing nothing).
func (d *DirectorySource) publishErrors() {
	byFile := maps.Clone(d.conflicts)
	if byFile == nil {
		byFile = map[string][]error{}
	}
	nsErrs := d.tenants.errors()
	for _, ns := range slices.Sorted(maps.Keys(nsErrs)) {
		for _, f := range d.nsFiles[ns] {
			byFile[f] = append(slices.Clip(byFile[f]), nsErrs[ns])
		}
	}
	m := map[string]error{}
	var held int32
	for path, st := range d.files {
		if !st.emptySince.IsZero() {
			held++
		}
		if err := errors.Join(append([]error{st.err}, byFile[path]...)...); err != nil {
			m[path] = err
		}
	}
	d.errs.Store(&m)
	d.held.Store(held)
}
