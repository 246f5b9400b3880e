// Package remotewrite is the prom_remote_write app: for every MetricAccess
// whose remoteWrite is enabled, it copies the series the object allows from
// a source Prometheus to the object's target (a Prometheus Service of the
// tenant, a Pushgateway, or any remote-write endpoint), each sample once and
// in order, with its original timestamp.
//
// # How a copy runs
//
//  1. The app (app.go) applies its defaults and builds the settings its
//     copiers share: the source, the rules for targets (targets.go), the
//     Kubernetes clients. It reads the tenants of the prom_tenancy app,
//     compiled by the same code as the query path.
//  2. The app holds one copier per copying MetricAccess of the tenants this
//     replica copies (app_copiers.go), in a process-wide pool (process.go),
//     so that a config reload keeps the copiers whose object and settings
//     did not change, and a replaced copier hands its cursor (progress,
//     counters; cursor.go) to its successor. Which tenants a replica copies:
//     with Kubernetes, those of the Leases it holds (lease.go, election.go:
//     client-go's leader election, one election per Lease, tenants hashed
//     onto a fixed number of Leases); the copiers of a Lease run in its
//     term and stop, writes in flight included, when client-go gives up
//     renewing, before another replica may take the Lease. For the other
//     tenants the app lists standby copiers that only report the holder.
//     Without Kubernetes, the static shard decides.
//  3. A copier (copier.go) runs a pass every interval, or at once while it
//     is behind. A pass holds the cursor, its tenant's turn and one of the
//     max_in_flight slots, and runs four steps:
//     a. plan the window from the copy state (progress.go, copyState.plan):
//     a new window after what the target acknowledged, or the partly sent
//     window again;
//     b. read it by remote read (source.go; extlabels.go strips a source's
//     external labels, parts.go joins a series cut into frames) into
//     memory, series by series, leaving out what was acknowledged and
//     checking every series against the policy (window.go); while it is
//     delivered, a copier that is behind reads the next window
//     (readahead.go), which the next pass takes if it plans that read;
//     c. deliver it (the delivery interface): in batches to a target that
//     stores timestamps (deliver_batches.go, over target_remotewrite.go),
//     or as one push of current values to a Pushgateway
//     (deliver_pushgateway.go, over target_pushgateway.go);
//     d. save the progress (a progressStore, store.go, durably): before a
//     batch that is not recorded yet, with the ends of the next
//     batchesPerSave batches, and when the window is done; a batch is sent
//     only once the store holds where it ends. The store is the state file
//     (statefile.go; file and directory synced), or with leader election a
//     ConfigMap every replica can read (store_kube.go), so that the next
//     leader resumes exactly where the last one's acknowledgements ended.
//     Its writes are fenced by resourceVersion: a new leader claims the
//     ConfigMap first, and a deposed leader's save then fails, so it sends
//     nothing more; a copier whose term has ended claims nothing back.
//     A ConfigMap made anew takes the state file's progress, if any (an
//     upgrade from a version without leader election).
//  4. The copier reports its state (starting, copying, retrying,
//     state_unwritable, refused; copier_status.go): the admin API
//     (admin.go), metrics (metrics.go), and status.remoteWrite of
//     Kubernetes objects (kubestatus.go).
//
// The copier's states and transitions are all in progress.go.
//
// # Why every sample arrives once
//
// A window's samples are sent in one order (series by series in label
// order, each series' in time order), and a position in that order
// (progress) names exactly what lies before it. Reading the same window
// again gives the same order, so a position saved in one run means the same
// samples in the next. The copy keeps acked, the end of what the target
// acknowledged, and recorded, the ends of the next batches as the state
// file holds them.
//
//   - No batch is sent before its end is on disk: one save records acked
//     and the ends of the next batchesPerSave batches, and returns only
//     once the file and its directory are synced (a crash of the machine
//     after it does not bring back an older state). Each batch then goes
//     out exactly at its recorded boundaries.
//   - A crash loses only the acknowledgements since the last save: the
//     next run reads from the saved acked and resends each recorded batch
//     alone, at its recorded boundaries, whatever batch_size is now (a
//     smaller one cuts a recorded batch into parts, recorded first; never
//     sent unrecorded). A receiver stores a batch whole or not at all:
//     one that holds it refuses it as out of order (counted as resent and
//     refused, not as dropped), or ignores it as identical; one that does
//     not stores it. No new sample goes down with it.
//   - No sample is lost: acked moves only past samples the target
//     acknowledged or refused for good (counted as dropped), and the next
//     read starts right after it.
//   - A save that fails sends nothing more: the copier is
//     state_unwritable and retries the save with backoff before it reads
//     or sends again. Copying on from memory would, after a crash, resume
//     from the stale state with batches that mix stored and new samples,
//     which a receiver refuses whole.
//   - A batch whose answer was lost without a crash (a timeout after the
//     receiver committed) is unsure: it is resent alone, as above.
//   - Stopping waits between batches; a write in flight gets stopGrace to
//     finish, and the state is saved without the recorded batches never
//     sent (a lost Lease cancels the write at once: the batch stays
//     recorded, and the next leader resends it alone). Two copiers of one
//     object (old and new settings during a reload) share the cursor and
//     take turns.
//   - Across replicas the same holds because the progress moves with the
//     Lease: a new leader loads (and claims) the state the last one saved,
//     and a save that may not have landed makes the cursor load again.
//
// The Pushgateway is the exception: it holds current values only, so its
// copy keeps no progress on disk and a restart pushes the current values
// again.
package remotewrite
