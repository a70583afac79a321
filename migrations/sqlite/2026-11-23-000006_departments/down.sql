DROP TABLE sections;
DROP TABLE departments;
