// Package cliflag holds the conventions every natsmesh command's flags
// follow, so that cmd/natsmesh only declares flags and maps them to the
// libraries' configurations.
//
//   - [NewSet] makes a subcommand's flag.FlagSet whose help writes --names
//     and, for each flag, its default and its environment variables.
//   - [Parse] sets each flag from its variables first, then parses the
//     command line, which wins: NATSMESH_<COMMAND>_<FLAG> for every flag
//     (NATSMESH_AGENT_TIMEOUT), and for the NATS connection flags also the
//     shared NATSMESH_<FLAG> (NATSMESH_NATS), which the command's own
//     variable overrides. Its errors are one line naming the command; an
//     unknown flag gets the nearest known one suggested ([Closest]).
//   - [Deprecate] keeps an old flag name working, with a warning.
//   - [ConfigFlag] and [ApplyConfigFile] read --config, a YAML file of
//     settings named like the flags, for the flags the command line and
//     the environment left unset.
//   - [List] is a repeatable, comma-separated flag; [IsSet] tells a flag
//     given from one left at its default.
package cliflag
