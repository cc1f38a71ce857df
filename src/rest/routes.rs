//! The route table: the only place that knows the REST paths. Each entry
//! says which GraphQL operation a route runs, how the request maps to its
//! variables, and what a success looks like. The router and the OpenAPI
//! document are both generated from this table.

use axum::http::Method;

/// One REST route.
pub struct Route {
    pub method: Method,
    /// The documented path; it answers with and without the trailing slash.
    pub path: &'static str,
    pub operation_id: &'static str,
    pub summary: &'static str,
    /// The GraphQL document it runs (the operation plus the REST fragment);
    /// its root field is aliased `result`.
    pub document: &'static str,
    /// Query parameters, each bound to a variable.
    pub query: &'static [QueryParam],
    /// The GraphQL input type the JSON body becomes (variable `input`).
    pub body: Option<&'static str>,
    pub success: Success,
}

/// A query parameter and the variable it fills.
pub struct QueryParam {
    pub name: &'static str,
    pub variable: &'static str,
    pub kind: ParamKind,
    pub description: &'static str,
}

/// How a query parameter's text becomes a variable.
pub enum ParamKind {
    /// `true/1/yes/on` or `false/0/no/off`, any case; the default when absent.
    Bool { default: bool },
    /// Passed through to a GraphQL enum (which checks it); null when absent.
    Enum { graphql_type: &'static str },
}

/// What a successful result becomes. A null `result` is always a 404.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Success {
    /// 200 with the result as the body.
    Ok,
    /// 201 with the result as the body.
    Created,
    /// 200 with an empty body.
    Empty,
}

/// An operation's text with the Printer fragment it spreads.
macro_rules! op {
    ($file:literal) => {
        concat!(
            include_str!(concat!("operations/", $file)),
            include_str!("operations/printer.graphql")
        )
    };
}

const ID_ONLY: &[QueryParam] = &[];

/// Every REST route printgate serves.
pub static ROUTES: &[Route] = &[
    Route {
        method: Method::GET,
        path: "/api/v1/printers/",
        operation_id: "listPrinters",
        summary: "List your printers, ordered by id.",
        document: op!("list_printers.graphql"),
        query: &[QueryParam {
            name: "with_archived",
            variable: "withArchived",
            kind: ParamKind::Bool { default: false },
            description: "Whether archived printers are listed too.",
        }],
        body: None,
        success: Success::Ok,
    },
    Route {
        method: Method::POST,
        path: "/api/v1/printers/",
        operation_id: "createPrinter",
        summary: "Add a printer; the answer carries its agent's auth_token.",
        document: op!("create_printer.graphql"),
        query: ID_ONLY,
        body: Some("CreatePrinterInput"),
        success: Success::Created,
    },
    Route {
        method: Method::GET,
        path: "/api/v1/printers/{id}/",
        operation_id: "getPrinter",
        summary: "One of your printers (archived ones too).",
        document: op!("get_printer.graphql"),
        query: ID_ONLY,
        body: None,
        success: Success::Ok,
    },
    Route {
        method: Method::PATCH,
        path: "/api/v1/printers/{id}/",
        operation_id: "updatePrinter",
        summary: "Change the given writable fields; read-only fields are ignored.",
        document: op!("update_printer.graphql"),
        query: ID_ONLY,
        body: Some("UpdatePrinterInput"),
        success: Success::Ok,
    },
    Route {
        method: Method::DELETE,
        path: "/api/v1/printers/{id}/",
        operation_id: "deletePrinter",
        summary: "Delete a printer (its print history is kept).",
        document: include_str!("operations/delete_printer.graphql"),
        query: ID_ONLY,
        body: None,
        success: Success::Empty,
    },
    Route {
        method: Method::POST,
        path: "/api/v1/printers/{id}/cancel_print",
        operation_id: "cancelPrint",
        summary: "Send cancel to the printer's agent.",
        document: op!("cancel_print.graphql"),
        query: ID_ONLY,
        body: None,
        success: Success::Ok,
    },
    Route {
        method: Method::POST,
        path: "/api/v1/printers/{id}/pause_print",
        operation_id: "pausePrint",
        summary: "Send pause to the printer's agent.",
        document: op!("pause_print.graphql"),
        query: ID_ONLY,
        body: None,
        success: Success::Ok,
    },
    Route {
        method: Method::POST,
        path: "/api/v1/printers/{id}/resume_print",
        operation_id: "resumePrint",
        summary: "Send resume to the printer's agent.",
        document: op!("resume_print.graphql"),
        query: ID_ONLY,
        body: None,
        success: Success::Ok,
    },
    Route {
        method: Method::POST,
        path: "/api/v1/printers/{id}/mute_current_print",
        operation_id: "muteCurrentPrint",
        summary: "Mute (or unmute) failure alerts for the current print.",
        document: op!("mute_current_print.graphql"),
        query: &[QueryParam {
            name: "mute_alert",
            variable: "mute",
            kind: ParamKind::Bool { default: true },
            description: "false unmutes; absent or true mutes.",
        }],
        body: None,
        success: Success::Ok,
    },
    Route {
        method: Method::POST,
        path: "/api/v1/printers/{id}/acknowledge_alert",
        operation_id: "acknowledgeAlert",
        summary: "Acknowledge the current print's failure alert.",
        document: op!("acknowledge_alert.graphql"),
        query: &[QueryParam {
            name: "alert_overwrite",
            variable: "alertOverwrite",
            kind: ParamKind::Enum {
                graphql_type: "AlertOverwrite",
            },
            description: "Your verdict on the alert: FAILED or NOT_FAILED.",
        }],
        body: None,
        success: Success::Ok,
    },
];

impl Route {
    /// Whether the path has an `{id}` segment.
    pub fn has_id(&self) -> bool {
        self.path.contains("{id}")
    }
}
