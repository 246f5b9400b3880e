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
//  2. The app holds one copier per copying MetricAccess of the tenants its
//     shard owns (app_copiers.go), in a process-wide pool (process.go), so
//     that a config reload keeps the copiers whose object and settings did
//     not change, and a replaced copier hands its cursor (progress,
//     counters; cursor.go) to its successor.
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
//     d. save the progress (statefile.go): before each batch and after
//     each acknowledgement, and when the window is done.
//  4. The copier reports its state: the admin API (admin.go), metrics
//     (metrics.go), and status.remoteWrite of Kubernetes objects
//     (kubestatus.go).
//
// The copier's states and transitions are all in progress.go.
//
// # Why every sample arrives once
//
// A window's samples are sent in one order (series by series in label
// order, each series' in time order), and a position in that order
// (progress) names exactly what lies before it. Reading the same window
// again gives the same order, so a position saved in one run means the same
// samples in the next. The copy keeps two positions: acked, the end of what
// the target acknowledged, and, while a batch's answer is outstanding or
// was lost, unsure, the end of that batch.
//
//   - No sample is sent twice after it was acknowledged: acked is saved
//     after every acknowledged batch, and a read leaves out what acked
//     covers.
//   - No sample is lost: acked moves only past samples the target
//     acknowledged or refused for good (counted as dropped), and the next
//     read starts right after it.
//   - A batch whose answer was lost (a timeout after the receiver
//     committed, or a crash: its end is saved as in flight before it is
//     sent) is resent alone, never with new samples. A receiver that holds
//     it refuses it as out of order, or ignores it as identical; a receiver
//     that does not stores it. Either way no new sample goes down with it.
//   - Stopping waits between batches; a write in flight gets stopGrace to
//     finish and save its acknowledgement. Two copiers of one object (old
//     and new settings during a reload) share the cursor and take turns.
//
// The Pushgateway is the exception: it holds current values only, so its
// copy keeps no progress on disk and a restart pushes the current values
// again.
package remotewrite
