// Package live keeps the live mesh file and brings it to the agents: the
// JetStream KV bucket that holds it, and the Sources that watch it.
//
// The parts fit like this:
//
//   - [Store] keeps the live file in the KV bucket [Bucket] under [Key], as
//     canonical JSON, so one revision is one whole file; [Store.ApplyIf]
//     writes only over the revision a change was reviewed against.
//   - [Source] holds the current file in an atomic pointer for the hot path
//     ([Source.Current]). [WatchBucket] feeds it from the bucket with no
//     JetStream consumer: it subscribes to the bucket's writes
//     ([WriteSubject]) and reads the current version by direct get
//     ([DirectGetSubject]) at start, after each write it hears, after each
//     reconnect and every [SourceConfig.Poll]; the store is the truth, and
//     a version whose digest differs from the one held is applied if it
//     comes after it: of another generation of the bucket
//     ([GenerationHeader], which Store writes), or of the same at a
//     higher revision (a replica behind answers older ones). Only a
//     write is a cue to ask, and a watch asks at most 20 times at once
//     and 5 times a second. [WatchKV] does the same and waits for the
//     first answer; [Get] reads once. A cache file ([SourceConfig.Cache])
//     keeps the last good version on disk, with the mesh it came from,
//     for a start of the same mesh without the store.
//     [WatchFile] watches a local file, [Static] never changes; [Watch]
//     picks one from a command's --policy flag. A version that does not
//     parse is logged and refused, and the last good one kept. Watchers
//     decode each version with policies.ParseStored.
//   - [Source.Follow] shares one watch among many Sources in one program
//     (one subscription, one decode per version), each with its own
//     OnChange and Close.
//   - [Handler] serves the current file as JSON (an admin endpoint's
//     GET /config).
//
// The file's model, parser and rendering are package policies.
package live
