//! Templates, stored as the YAML the user wrote (validated first).

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use super::{Result, Store, StoreError, now_ms, rfc3339};
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
}

impl Store {
    /// Validates and stores a template; `name` overrides the template's own name.
    pub fn create_template(&self, yaml: &str, name: Option<&str>) -> Result<TemplateRecord> {
        let template = Template::parse(yaml)?;
        let name = name
            .map(str::to_string)
            .or(template.name)
            .unwrap_or_default();
        let id = uuid::Uuid::new_v4().to_string();
        self.connection().execute(
            "INSERT INTO templates (id, name, data, created_ms) VALUES (?1, ?2, ?3, ?4)",
            params![id, name, yaml, now_ms()],
        )?;
        self.get_template(&id)
    }

    /// The template with this id; [`StoreError::NotFound`] if none.
    pub fn get_template(&self, id: &str) -> Result<TemplateRecord> {
        load_template(&self.connection(), id)
    }

    /// Every template, oldest first.
    pub fn list_templates(&self) -> Result<Vec<TemplateRecord>> {
        let connection = self.connection();
        let mut statement = connection
            .prepare("SELECT id, name, data, created_ms FROM templates ORDER BY created_ms, id")?;
        let templates = statement
            .query_map([], template_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(templates)
    }

    /// Deletes a template. Workflows keep their own copy of its actions.
    pub fn delete_template(&self, id: &str) -> Result<()> {
        let deleted = self
            .connection()
            .execute("DELETE FROM templates WHERE id = ?1", [id])?;
        if deleted == 0 {
            return Err(StoreError::NotFound {
                kind: "template",
                id: id.to_string(),
            });
        }
        Ok(())
    }
}

fn template_row(row: &Row<'_>) -> rusqlite::Result<TemplateRecord> {
    Ok(TemplateRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        data: row.get(2)?,
        created_at: rfc3339(row.get(3)?),
    })
}

pub(crate) fn load_template(connection: &Connection, id: &str) -> Result<TemplateRecord> {
    connection
        .query_row(
            "SELECT id, name, data, created_ms FROM templates WHERE id = ?1",
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
