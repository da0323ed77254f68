//! Google OAuth bearer tokens for Vertex AI, from a service-account file or application-default credentials.
