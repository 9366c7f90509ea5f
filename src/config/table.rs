//! The `settings!` macro: turns the settings table in `config/mod.rs` into everything a setting
//! needs, so each one is written once.
//!
//! From one row per setting it generates: the field of [`Config`](crate::Config) (or of
//! [`ClassConfig`](crate::ClassConfig), for rows addressed `pool.FIELD`) with a doc stating the
//! default and the unit, `impl Default` for both structs, [`SETTINGS`](crate::SETTINGS), the
//! text parser behind [`Config::set`](crate::Config::set) and the environment and flag readers,
//! the per-setting checks of `validate`, and the [`ServerBuilder`](crate::ServerBuilder) setter.
//!
//! A row reads:
//!
//! ```text
//! /// Doc lines: the field's documentation (and the setter's, after its first line).
//! "kebab-name" => field: Type [unit] = "default text" (optional default expression),
//!     "one-line meaning for --help", check CHECK_FN, setter ARG_TYPE;
//! ```
//!
//! The default is the text parsed by the unit's parser unless an expression follows it (then the
//! text only describes it, as `number of cores`); a unit test checks that the two agree. `unit`
//! names a module of `config/value.rs` (its `parse` reads the text form). `check` (optional)
//! is a function from `&Type` to `Result<(), String>`, whose message follows the setting's name.
//! `setter` (optional) gives the setter's argument type when it is not `Type` (it must convert
//! with `Into`).

/// Generates the settings' structs, defaults, table, parser, checks and builder setters.
macro_rules! settings {
    // A row of the default pool class (`pool.FIELD`): goes to `ClassConfig` and to the table.
    (@munch $metas:tt [$($class:tt)*] [$($top:tt)*] [$($all:tt)*]
        $(#[doc = $doc:literal])*
        $name:literal => pool . $field:ident : $ty:ty [$unit:ident] = $shown:literal
            $(($default:expr))?, $meaning:literal $(, check $check:expr)? $(, setter $arg:ty)?;
        $($rest:tt)*
    ) => {
        settings!(@munch $metas
            [$($class)* { [$(#[doc = $doc])*] $name $field $ty [$unit] $shown ($($default)?) ($($check)?) }]
            [$($top)*]
            [$($all)* { [$(#[doc = $doc])*] $name (pool . $field) $field $ty [$unit] $shown $meaning ($($arg)?) }]
            $($rest)*
        );
    };
    // A row of `Config` itself.
    (@munch $metas:tt [$($class:tt)*] [$($top:tt)*] [$($all:tt)*]
        $(#[doc = $doc:literal])*
        $name:literal => $field:ident : $ty:ty [$unit:ident] = $shown:literal
            $(($default:expr))?, $meaning:literal $(, check $check:expr)? $(, setter $arg:ty)?;
        $($rest:tt)*
    ) => {
        settings!(@munch $metas
            [$($class)*]
            [$($top)* { [$(#[doc = $doc])*] $name $field $ty [$unit] $shown ($($default)?) ($($check)?) }]
            [$($all)* { [$(#[doc = $doc])*] $name ($field) $field $ty [$unit] $shown $meaning ($($arg)?) }]
            $($rest)*
        );
    };
    // Every row read: generate the items.
    (@munch
        { [$(#[$config_meta:meta])*] [$(#[$class_meta:meta])*] }
        [$({ [$(#[doc = $cdoc:literal])*] $cname:literal $cfield:ident $cty:ty [$cunit:ident]
            $cshown:literal ($($cdefault:expr)?) ($($ccheck:expr)?) })*]
        [$({ [$(#[doc = $tdoc:literal])*] $tname:literal $tfield:ident $tty:ty [$tunit:ident]
            $tshown:literal ($($tdefault:expr)?) ($($tcheck:expr)?) })*]
        [$({ [$(#[doc = $doc:literal])*] $name:literal ($($path:ident).+) $field:ident $ty:ty
            [$unit:ident] $shown:literal $meaning:literal ($($arg:ty)?) })*]
    ) => {
        $(#[$config_meta])*
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        pub struct Config {
            /// The default pool class, for routes that name none: settings `workers`, `queue`,
            /// `queue-timeout` and `job-wedge-limit`.
            pub pool: ClassConfig,
            $(
                $(#[doc = $tdoc])*
                #[doc = ""]
                #[doc = concat!("Setting `", $tname, "`, ", settings!(@unit $tunit),
                    ". Defaults to `", $tshown, "`.")]
                pub $tfield: $tty,
            )*
        }

        $(#[$class_meta])*
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        pub struct ClassConfig {
            $(
                $(#[doc = $cdoc])*
                #[doc = ""]
                #[doc = concat!("For the default class, setting `", $cname, "`; ",
                    settings!(@unit $cunit), ". Defaults to `", $cshown, "`.")]
                pub $cfield: $cty,
            )*
        }

        impl Default for Config {
            fn default() -> Config {
                Config {
                    pool: ClassConfig::default(),
                    $($tfield: settings!(@default $tunit $tshown ($($tdefault)?)),)*
                }
            }
        }

        impl Default for ClassConfig {
            fn default() -> ClassConfig {
                ClassConfig {
                    $($cfield: settings!(@default $cunit $cshown ($($cdefault)?)),)*
                }
            }
        }

        /// Every setting, in the order `--help` and the README list them.
        ///
        /// Each has a [`ServerBuilder`](crate::ServerBuilder) setter named after it (`-` as `_`),
        /// a flag (`--NAME`, see [`Config::apply_args`]) and an environment variable
        /// ([`Setting::env_var`], see [`Config::apply_vars`]).
        ///
        /// # Examples
        ///
        /// ```
        /// let timeout = steadyloop::Setting::named("keep-alive-timeout").unwrap();
        /// assert_eq!(timeout.default, "5s");
        /// assert_eq!(timeout.env_var(), "STEADYLOOP_KEEP_ALIVE_TIMEOUT");
        /// assert!(steadyloop::SETTINGS.iter().any(|s| s.name == "workers"));
        /// ```
        pub const SETTINGS: &[Setting] = &[
            $(Setting {
                name: $name,
                default: $shown,
                unit: settings!(@unit $unit),
                meaning: $meaning,
            },)*
        ];

        impl Config {
            /// Parses `value` for setting `key`; errors start with `label` (the key, flag or
            /// variable the value came from).
            fn apply_text(&mut self, label: &str, key: &str, value: &str) -> Result<()> {
                let value = value.trim();
                let bad = |message: String| Error::Config(format!("{label}: {message}"));
                match key {
                    $($name => self.$($path).+ = value::$unit::parse(value).map_err(bad)?,)*
                    _ => return Err(Error::Config(format!("unknown setting `{key}`"))),
                }
                Ok(())
            }

            /// Runs the table's checks of the settings outside the pool class.
            fn check_each(&self) -> Result<()> {
                $($(
                    ($tcheck)(&self.$tfield)
                        .map_err(|message| Error::Config(format!("{} {message}", $tname)))?;
                )?)*
                Ok(())
            }
        }

        impl ClassConfig {
            /// Checks the limits; `class` names the class in the message.
            pub(crate) fn validate(&self, class: &str) -> Result<()> {
                $($(
                    ($ccheck)(&self.$cfield).map_err(|message| {
                        Error::Config(format!("pool class `{class}`: {} {message}", $cname))
                    })?;
                )?)*
                Ok(())
            }
        }

        // The setters take `Into<ARG>` only where the table names an argument type (`addr`);
        // elsewhere `.into()` converts a type to itself.
        #[allow(clippy::useless_conversion)]
        impl crate::ServerBuilder {
            $(
                #[doc = concat!("Sets `", $name, "`: ", $meaning, ".")]
                #[doc = ""]
                $(#[doc = $doc])*
                #[doc = ""]
                #[doc = concat!("Defaults to `", $shown, "`.")]
                pub fn $field(mut self, value: settings!(@arg $ty; $($arg)?)) -> crate::ServerBuilder {
                    self.config.$($path).+ = value.into();
                    self
                }
            )*
        }
    };
    // The default value: the expression if the row gives one, else the parsed text.
    (@default $unit:ident $shown:literal ()) => {
        value::$unit::parse($shown).expect("the settings table's default texts parse")
    };
    (@default $unit:ident $shown:literal ($default:expr)) => {
        $default
    };
    // The setter's argument type: the row's `setter` type, else the field's.
    (@arg $ty:ty; ) => { $ty };
    (@arg $ty:ty; $arg:ty) => { $arg };
    // What each unit's text form is, for docs and `--help`.
    (@unit address) => { "an address (host:port)" };
    (@unit count) => { "a whole number" };
    (@unit bytes) => { "in bytes (`KiB`, `MiB` and `GiB` suffixes accepted)" };
    (@unit duration) => { "a duration (`500ms`, `10s`, `2m`; a bare number is seconds)" };
    (@unit switch) => { "`true` or `false`" };
    (@unit ratio) => { "a number from 0 to 1" };
    (@unit frontend) => { "`native` or `tiny_http`" };
    // Entry: the two structs' docs, then the rows.
    (
        $(#[$config_meta:meta])* pub struct Config;
        $(#[$class_meta:meta])* pub struct ClassConfig;
        $($rows:tt)*
    ) => {
        settings!(@munch { [$(#[$config_meta])*] [$(#[$class_meta])*] } [] [] [] $($rows)*);
    };
}
