// Package live keeps the live mesh file and brings it to the agents: the
// JetStream KV bucket that holds it, and the Sources that watch it.
//
// The parts fit like this:
//
//   - [Store] keeps the live file in the KV bucket [Bucket] under [Key], as
//     canonical JSON, so one revision is one whole file; [Store.ApplyIf]
//     writes only over the revision a change was reviewed against.
//   - [Source] holds the current file in an atomic pointer for the hot path
//     ([Source.Current]). [WatchKV] feeds it from the bucket (one ordered
//     consumer per watch), [WatchBucket] does so once the bucket exists,
//     [WatchFile] from a local file, [Static] never changes; [Watch] picks
//     one from a command's --policy flag. A version that does not parse is
//     logged and the last good one kept. Watchers decode each version with
//     policies.ParseStored.
//   - [Source.Follow] shares one watch among many Sources in one program
//     (one consumer, one decode per version), each with its own OnChange
//     and Close.
//   - [Handler] serves the current file as JSON (an admin endpoint's
//     GET /config).
//
// The file's model, parser and rendering are package policies.
package live
