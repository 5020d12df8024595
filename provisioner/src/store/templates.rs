//! Templates, stored as the YAML the user wrote (validated first).

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use super::Outcome;
use super::text::plain_text;
use super::{Result, Store, StoreError, now_ms, rfc3339, to_json};
use crate::template::Template;

/// A stored workflow template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateRecord {
    /// Unique; a UUID generated at creation.
    pub id: String,
    /// The name given at creation, else the template's own; may be empty.
    pub name: String,
    /// The template's YAML.
    pub data: String,
    /// RFC 3339 with milliseconds, UTC.
    pub created_at: String,
    /// The Tinkerbell `Template` object this template was applied from (`provisioner apply`),
    /// as stored: written back by `provisioner get`. None for templates made otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<serde_json::Value>,
}

impl Store {
    /// Validates and stores a template; `name` overrides the template's own name.
    pub fn create_template(&self, yaml: &str, name: Option<&str>) -> Result<TemplateRecord> {
        let template = Template::parse(yaml)?;
        let name = name
            .map(str::to_string)
            .or(template.name)
            .unwrap_or_default();
        plain_text("name", &name)?;
        let id = uuid::Uuid::new_v4().to_string();
        self.connection().execute(
            "INSERT INTO templates (id, name, data, created_ms) VALUES (?1, ?2, ?3, ?4)",
            params![id, name, yaml, now_ms()],
        )?;
        self.get_template(&id)
    }

    /// Creates or updates template `id` from a Tinkerbell object. `data` is the template's
    /// YAML; it is checked by [`Template::parse`] unless `checked` is false (text with Go
    /// template expressions beyond `{{.key}}` that only parses once a workflow renders it).
    /// Workflows made earlier keep the actions they were rendered with.
    pub fn apply_template(
        &self,
        id: &str,
        name: &str,
        data: &str,
        checked: bool,
        object: &serde_json::Value,
    ) -> Result<(Outcome, TemplateRecord)> {
        plain_text("id", id)?;
        plain_text("name", name)?;
        if checked {
            Template::parse(data)?;
        }
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        let outcome = match load_template(&transaction, id) {
            Ok(stored) => {
                if stored.name == name
                    && stored.data == data
                    && stored.object.as_ref() == Some(object)
                {
                    return Ok((Outcome::Unchanged, stored));
                }
                transaction.execute(
                    "UPDATE templates SET name = ?2, data = ?3, object = ?4 WHERE id = ?1",
                    params![id, name, data, to_json(object)?],
                )?;
                Outcome::Configured
            }
            Err(StoreError::NotFound { .. }) => {
                transaction.execute(
                    "INSERT INTO templates (id, name, data, created_ms, object)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![id, name, data, now_ms(), to_json(object)?],
                )?;
                Outcome::Created
            }
            Err(other) => return Err(other),
        };
        let template = load_template(&transaction, id)?;
        transaction.commit()?;
        Ok((outcome, template))
    }

    /// The template with this id, or else this unique name; [`StoreError::NotFound`] if none.
    pub fn get_template(&self, id_or_name: &str) -> Result<TemplateRecord> {
        let connection = self.connection();
        let id = resolve_template(&connection, id_or_name)?;
        load_template(&connection, &id)
    }

    /// Every template, oldest first.
    pub fn list_templates(&self) -> Result<Vec<TemplateRecord>> {
        let connection = self.connection();
        let mut statement = connection.prepare(
            "SELECT id, name, data, created_ms, object FROM templates ORDER BY created_ms, id",
        )?;
        let templates = statement
            .query_map([], template_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(templates)
    }

    /// Deletes a template by id, or else by its unique name. Workflows keep their own copy
    /// of its actions.
    pub fn delete_template(&self, id_or_name: &str) -> Result<()> {
        let connection = self.connection();
        let id = resolve_template(&connection, id_or_name)?;
        let deleted = connection.execute("DELETE FROM templates WHERE id = ?1", [&id])?;
        if deleted == 0 {
            return Err(StoreError::NotFound {
                kind: "template",
                id,
            });
        }
        Ok(())
    }
}

fn template_row(row: &Row<'_>) -> rusqlite::Result<TemplateRecord> {
    let object = row
        .get::<_, Option<String>>(4)?
        .map(|text| serde_json::from_str(&text))
        .transpose()
        .map_err(|error| {
            rusqlite::Error::FromSqlConversionFailure(
                4,
                rusqlite::types::Type::Text,
                Box::new(error),
            )
        })?;
    Ok(TemplateRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        data: row.get(2)?,
        created_at: rfc3339(row.get(3)?),
        object,
    })
}

pub(crate) fn load_template(connection: &Connection, id: &str) -> Result<TemplateRecord> {
    connection
        .query_row(
            "SELECT id, name, data, created_ms, object FROM templates WHERE id = ?1",
            [id],
            template_row,
        )
        .optional()?
        .ok_or_else(|| StoreError::NotFound {
            kind: "template",
            id: id.to_string(),
        })
}

/// The id of the template whose id, or else whose unique name, is `id_or_name`.
pub(crate) fn resolve_template(connection: &Connection, id_or_name: &str) -> Result<String> {
    if let Ok(template) = load_template(connection, id_or_name) {
        return Ok(template.id);
    }
    let ids = connection
        .prepare("SELECT id FROM templates WHERE name = ?1 ORDER BY created_ms")?
        .query_map([id_or_name], |row| row.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    match ids.as_slice() {
        [id] => Ok(id.clone()),
        [] => Err(StoreError::NotFound {
            kind: "template (by id or name)",
            id: id_or_name.to_string(),
        }),
        _ => Err(StoreError::Conflict(format!(
            "{} templates are named {id_or_name:?} ({}); name the template by id",
            ids.len(),
            ids.join(", ")
        ))),
    }
}
