// Package config loads, defaults and validates the zkgate configuration.
//
// The configuration is a YAML file with snake_case keys, read with viper and
// decoded into the typed structs of this package (mapstructure tags). It is
// the only package that imports viper: the composition root converts these
// structs into the plain option structs of the other packages.
//
// Loading follows one path, for the first load and for every reload:
//
//  1. read the YAML (a syntax error names the file and line);
//  2. apply ZKGATE_* environment overrides (see EnvVar);
//  3. fill in defaults, which live in defaults.go and nowhere else;
//  4. reject unknown keys, naming each with its full key path;
//  5. decode into Config (a bad value names its key path);
//  6. normalize (lower-case service references, canonical header names,
//     upper-case methods, default ZooKeeper paths) and Validate.
//
// Every problem is reported at once, as a FieldError naming the file and the
// key path (for example "gateway.yaml: routes[2].service: unknown service
// \"payments\""), joined with errors.Join.
//
// The static sections (entry_points, admin, log, trusted_proxies, shutdown,
// zookeeper) are read at start-up only; routes and services are applied live
// by reloads. Reloadable reports which static keys a new file changes, and
// Dynamic returns the part a reload swaps.
package config
