//! The scan and encode jobs as APDU sequences driven by responses.
