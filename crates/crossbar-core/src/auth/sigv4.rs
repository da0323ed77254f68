//! AWS Signature Version 4 for Bedrock, with credentials from the config or the standard AWS chain.
