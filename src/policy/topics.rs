//! Topic mapping (design §8.7): the logical names services use, and the physical names the
//! brokers have — `[[topics]]` rules, shadow copies and each broker's `topic_prefix`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use crate::config::Config;

/// Where a publish to a logical topic goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The topic the broker gets.
    pub physical: Arc<str>,
    /// The topic a copy also goes to, when the rule names one.
    pub shadow: Option<Arc<str>>,
}

/// One broker's mapping.
#[derive(Debug, Default)]
struct BrokerTopics {
    prefix: String,
    by_logical: HashMap<String, Route>,
    /// Physical name (prefix included) → logical name, for what consumers read.
    by_physical: HashMap<String, Arc<str>>,
}

/// Every broker's mapping, built once per configuration.
#[derive(Debug, Default)]
pub struct TopicMap {
    brokers: HashMap<String, BrokerTopics>,
}

impl TopicMap {
    /// The mapping `config` describes.
    pub fn new(config: &Config) -> Self {
        let mut brokers: HashMap<String, BrokerTopics> = HashMap::new();
        for (name, broker) in &config.brokers {
            if let Some(prefix) = broker.topic_prefix() {
                brokers.entry(name.clone()).or_default().prefix = prefix.to_string();
            }
        }
        for rule in &config.topics {
            let topics = brokers.entry(rule.broker.clone()).or_default();
            let physical: Arc<str> = format!(
                "{}{}",
                topics.prefix,
                rule.physical.as_deref().unwrap_or(&rule.name)
            )
            .into();
            let shadow = rule
                .shadow
                .as_ref()
                .map(|s| Arc::from(format!("{}{s}", topics.prefix)));
            topics
                .by_physical
                .insert(physical.to_string(), Arc::from(rule.name.as_str()));
            topics
                .by_logical
                .insert(rule.name.clone(), Route { physical, shadow });
        }
        Self { brokers }
    }

    /// Where a publish to `topic` on `broker` goes: its rule's physical topic and shadow, or
    /// the name itself behind the broker's prefix.
    pub fn route(&self, broker: &str, topic: &Arc<str>) -> Route {
        let Some(topics) = self.brokers.get(broker) else {
            return Route {
                physical: topic.clone(),
                shadow: None,
            };
        };
        match topics.by_logical.get(&**topic) {
            Some(route) => route.clone(),
            None if topics.prefix.is_empty() => Route {
                physical: topic.clone(),
                shadow: None,
            },
            None => Route {
                physical: format!("{}{topic}", topics.prefix).into(),
                shadow: None,
            },
        }
    }

    /// `name` behind `broker`'s prefix, no rule applied: for topics that are physical names
    /// already (the audit topic).
    pub fn prefixed(&self, broker: &str, name: &str) -> String {
        match self.brokers.get(broker) {
            Some(topics) => format!("{}{name}", topics.prefix),
            None => name.to_string(),
        }
    }

    /// What a subscription to `topic` — a name or a pattern — consumes on `broker`.
    pub fn physical<'a>(&self, broker: &str, topic: &'a str) -> Cow<'a, str> {
        let Some(topics) = self.brokers.get(broker) else {
            return Cow::Borrowed(topic);
        };
        match topics.by_logical.get(topic) {
            Some(route) => Cow::Owned(route.physical.to_string()),
            None if topics.prefix.is_empty() => Cow::Borrowed(topic),
            None => Cow::Owned(format!("{}{topic}", topics.prefix)),
        }
    }

    /// The physical prefix to list `broker`'s topics by, for the logical names starting with
    /// `prefix`: the broker's `topic_prefix` and `prefix` behind it — `prefix` alone cannot
    /// narrow the listing when a rule maps names elsewhere.
    pub fn listing_prefix(&self, broker: &str, prefix: Option<&str>) -> Option<String> {
        let prefix = prefix.unwrap_or_default();
        let listing = match self.brokers.get(broker) {
            None => prefix.to_string(),
            Some(topics) if topics.by_logical.is_empty() => format!("{}{prefix}", topics.prefix),
            Some(topics) => topics.prefix.clone(),
        };
        Some(listing).filter(|p| !p.is_empty())
    }

    /// The logical name of `physical` on `broker`, as services see it; `None` for a topic
    /// outside the broker's prefix (another tenant's).
    pub fn logical<'a>(&self, broker: &str, physical: &'a str) -> Option<Cow<'a, str>> {
        let Some(topics) = self.brokers.get(broker) else {
            return Some(Cow::Borrowed(physical));
        };
        if let Some(logical) = topics.by_physical.get(physical) {
            return Some(Cow::Owned(logical.to_string()));
        }
        physical.strip_prefix(&*topics.prefix).map(Cow::Borrowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawConfig;

    fn map(toml: &str) -> TopicMap {
        TopicMap::new(&RawConfig::from_toml(toml).unwrap().validate().unwrap())
    }

    #[test]
    fn without_rules_every_name_is_its_own() {
        let map = map("[brokers.a]\nkind = \"memory\"\n");
        let orders: Arc<str> = "orders".into();
        let route = map.route("a", &orders);
        assert!(Arc::ptr_eq(&route.physical, &orders));
        assert_eq!(route.shadow, None);
        assert_eq!(map.physical("a", "orders.*"), "orders.*");
        assert_eq!(map.logical("a", "orders").as_deref(), Some("orders"));
    }

    #[test]
    fn rules_and_prefix_apply_both_ways() {
        let map = map(
            "[brokers.a]\nkind = \"memory\"\ntopic_prefix = \"t1.\"\n\
             [brokers.b]\nkind = \"memory\"\n\
             [[topics]]\nname = \"orders\"\nbroker = \"a\"\nphysical = \"orders.v2\"\nshadow = \"orders.canary\"\n",
        );
        let route = map.route("a", &"orders".into());
        assert_eq!(&*route.physical, "t1.orders.v2");
        assert_eq!(route.shadow.as_deref(), Some("t1.orders.canary"));
        assert_eq!(&*map.route("a", &"payments".into()).physical, "t1.payments");
        assert_eq!(&*map.route("b", &"orders".into()).physical, "orders");
        assert_eq!(map.physical("a", "orders"), "t1.orders.v2");
        assert_eq!(map.physical("a", "payments.*"), "t1.payments.*");
        assert_eq!(map.logical("a", "t1.orders.v2").as_deref(), Some("orders"));
        assert_eq!(map.logical("a", "t1.payments").as_deref(), Some("payments"));
        assert_eq!(map.logical("a", "t2.payments"), None);
        assert_eq!(map.logical("b", "orders.v2").as_deref(), Some("orders.v2"));
    }
}
