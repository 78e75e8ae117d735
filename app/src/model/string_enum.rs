//! Enums that are stored and sent by name, each declared with one table of variants
//! and names instead of hand-written `match`es that must agree.

/// Gives an enum `ALL`, `as_str`, `parse` (which trims its input) and `Display` from
/// one table of variants and names, and, on the server, its MySQL encoding (a string,
/// or a MySQL `ENUM` of the same names; decoding goes through `parse`, so no query
/// handles these as loose strings). An optional `else "…"` is the message `parse`
/// gives for anything else, for names a user types.
macro_rules! string_enum_impl {
    ($ty:ident { $($variant:ident => $name:literal),+ $(,)? } $(else $message:literal)?) => {
        impl $ty {
            pub const ALL: [$ty; <[&str]>::len(&[$($name),+])] = [$($ty::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }

            pub fn parse(s: &str) -> Result<Self, String> {
                match s.trim() {
                    $($name => Ok($ty::$variant),)+
                    other => Err($crate::model::string_enum::unknown(
                        stringify!($ty),
                        other,
                        [$($message)?].first().copied(),
                    )),
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        #[cfg(feature = "ssr")]
        $crate::model::string_enum::mysql_enum!($ty);
    };
}

pub(crate) use string_enum_impl as string_enum;

/// `parse`'s error: the enum's own message, or one naming the type and the input.
pub fn unknown(type_name: &str, input: &str, message: Option<&str>) -> String {
    match message {
        Some(m) => m.to_string(),
        None => format!("unknown {type_name} {input:?}"),
    }
}

#[cfg(feature = "ssr")]
macro_rules! mysql_enum_impl {
    ($ty:ty) => {
        impl sqlx::Type<sqlx::MySql> for $ty {
            fn type_info() -> sqlx::mysql::MySqlTypeInfo {
                <str as sqlx::Type<sqlx::MySql>>::type_info()
            }
            fn compatible(ty: &sqlx::mysql::MySqlTypeInfo) -> bool {
                <str as sqlx::Type<sqlx::MySql>>::compatible(ty)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::MySql> for $ty {
            fn decode(
                value: sqlx::mysql::MySqlValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&str as sqlx::Decode<sqlx::MySql>>::decode(value)?;
                Ok(<$ty>::parse(text)?)
            }
        }

        impl sqlx::Encode<'_, sqlx::MySql> for $ty {
            fn encode_by_ref(
                &self,
                buf: &mut Vec<u8>,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<sqlx::MySql>>::encode_by_ref(&self.as_str(), buf)
            }
        }
    };
}

#[cfg(feature = "ssr")]
pub(crate) use mysql_enum_impl as mysql_enum;

#[cfg(test)]
mod tests {
    use super::string_enum;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Plain {
        One,
        TwoWords,
    }
    string_enum!(Plain { One => "one", TwoWords => "two_words" });

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Typed {
        A,
    }
    string_enum!(Typed { A => "a" } else "Pick a");

    #[test]
    fn every_variant_round_trips_through_its_name() {
        assert_eq!(Plain::ALL, [Plain::One, Plain::TwoWords]);
        for v in Plain::ALL {
            assert_eq!(Plain::parse(v.as_str()), Ok(v));
            assert_eq!(v.to_string(), v.as_str());
        }
        assert_eq!(Plain::parse(" two_words "), Ok(Plain::TwoWords));
    }

    #[test]
    fn anything_else_is_refused_with_the_enums_message() {
        assert_eq!(Plain::parse("One"), Err("unknown Plain \"One\"".into()));
        assert_eq!(Typed::ALL, [Typed::A]);
        assert_eq!(Typed::parse("b"), Err("Pick a".into()));
    }
}
